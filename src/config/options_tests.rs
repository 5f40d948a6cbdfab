//! The option language against what `mount -t tmpfs -o` users write.
use super::*;
use crate::config::{PoolLimit, MAX_THREADS};

const RAM: u64 = 16 << 30;

fn parse(opts: &str) -> Result<Config, OptionError> {
    let mut c = Config::default();
    apply_options_with_ram(&mut c, opts, RAM)?;
    Ok(c)
}

fn parse_err(opts: &str) -> String {
    parse(opts).expect_err(opts).message
}

#[test]
fn sizes_take_tmpfs_suffixes() {
    assert_eq!(parse("size=4096").unwrap().size, 4096);
    assert_eq!(parse("size=1k").unwrap().size, 1024);
    assert_eq!(parse("size=2M").unwrap().size, 2 << 20);
    assert_eq!(parse("size=3g").unwrap().size, 3 << 30);
    assert_eq!(parse("size=1T").unwrap().size, 1 << 40);
    assert_eq!(parse("size=25%").unwrap().size, RAM / 100 * 25);
    assert_eq!(parse("size=0").unwrap().size, u64::MAX);
    assert_eq!(parse("nr_inodes=10k").unwrap().nr_inodes, 10240);
    assert_eq!(parse("nr_inodes=0").unwrap().nr_inodes, u64::MAX);
}

#[test]
fn malformed_sizes_name_the_option_and_form() {
    for bad in [
        "size=",
        "size=g",
        "size=12q",
        "size=1.5g",
        "size=-1",
        "size=0%",
        "size=99999999999999999999",
    ] {
        let m = parse_err(bad);
        assert!(m.contains("`size=`") && m.contains("suffix"), "{bad}: {m}");
    }
    assert!(parse_err("size").contains("needs a value"));
    assert!(
        parse_err("size=16e").contains("size="),
        "overflow is an error"
    );
}

#[test]
fn mode_is_octal() {
    assert_eq!(parse("mode=755").unwrap().mode, 0o755);
    assert_eq!(parse("mode=01777").unwrap().mode, 0o1777);
    assert!(parse_err("mode=888").contains("octal"));
    assert!(parse_err("mode=17777").contains("octal"));
    assert!(parse_err("mode=").contains("octal"));
}

#[test]
fn ids_are_numbers_or_names() {
    let c = parse("uid=1234,gid=5678").unwrap();
    assert_eq!((c.uid, c.gid), (1234, 5678));
    let c = parse("uid=root,gid=root").unwrap();
    assert_eq!((c.uid, c.gid), (0, 0));
    assert!(parse_err("uid=no-such-user-zsfs").contains("user name or a numeric uid"));
    assert!(parse_err("gid=no-such-group-zsfs").contains("group name"));
    assert!(parse_err("uid=4294967295").contains("uid"));
}

#[test]
fn block_size_is_a_power_of_two_in_range() {
    assert_eq!(parse("block_size=4k").unwrap().block_size, 4096);
    assert_eq!(parse("block_size=65536").unwrap().block_size, 65536);
    assert_eq!(parse("block_size=128K").unwrap().block_size, 128 << 10);
    for bad in [
        "block_size=2k",
        "block_size=256k",
        "block_size=12k",
        "block_size=x",
    ] {
        assert!(parse_err(bad).contains("power of two"), "{bad}");
    }
}

#[test]
fn threads_cache_and_flags() {
    assert_eq!(parse("threads=3").unwrap().threads, 3);
    assert!(parse_err("threads=0").contains("from 1 to"));
    assert!(parse_err("threads=100000").contains("from 1 to"));
    assert_eq!(parse("cache=none").unwrap().cache, CacheMode::None);
    assert_eq!(parse("cache=auto").unwrap().cache, CacheMode::Auto);
    assert!(parse_err("cache=sometimes").contains("`auto` or `none`"));
    assert!(parse("allow_other").unwrap().allow_other);
    assert!(parse_err("allow_other=1").contains("takes no value"));
}

#[test]
fn pool_options() {
    let c = parse("pool_limit=1g,accept_threshold=80%").unwrap();
    assert_eq!(c.pool_limit, Some(PoolLimit::Bytes(1 << 30)));
    assert_eq!(c.accept_threshold, 80);
    assert_eq!(
        parse("pool_limit=20%").unwrap().pool_limit,
        Some(PoolLimit::Percent(20))
    );
    assert_eq!(parse("accept_threshold=95").unwrap().accept_threshold, 95);
    assert!(parse("second_chance=on").unwrap().second_chance);
    assert!(!parse("second_chance=off").unwrap().second_chance);
    assert!(parse_err("second_chance=maybe").contains("`on` or `off`"));
    assert!(parse("").unwrap().dedup, "dedup is on by default");
    assert_eq!(
        parse("").unwrap().max_dirty,
        Some(crate::config::default_max_dirty(
            crate::sys::bdi::global_dirty_threshold()
        ))
    );
    assert!(parse("").unwrap().max_dirty >= Some(1 << 30));
    assert_eq!(parse("max_dirty=256m").unwrap().max_dirty, Some(256 << 20));
    assert_eq!(parse("max_dirty=kernel").unwrap().max_dirty, None);
    assert!(parse_err("max_dirty=lots").contains("`kernel`"));
    assert!(parse("dedup=on").unwrap().dedup);
    assert!(!parse("size=1g,dedup=off").unwrap().dedup);
    assert!(parse_err("dedup=1").contains("`on` or `off`"));
    assert!(parse_err("dedup").contains("dedup"));
    for bad in [
        "pool_limit=0",
        "pool_limit=101%",
        "pool_limit=0%",
        "pool_limit=lots",
    ] {
        assert!(parse_err(bad).contains("`pool_limit=`"), "{bad}");
    }
    assert!(parse_err("accept_threshold=0").contains("1 to 100"));
    assert!(parse_err("accept_threshold=101%").contains("1 to 100"));
}

#[test]
fn backing_and_control() {
    assert_eq!(parse("backing=none").unwrap().backing, Backing::None);
    assert_eq!(
        parse("backing=/var/tmp/z").unwrap().backing,
        Backing::Path("/var/tmp/z".into())
    );
    let mut c = parse("backing=rel/file").unwrap();
    absolutize_paths(&mut c, Path::new("/home/u"));
    assert_eq!(c.backing, Backing::Path("/home/u/rel/file".into()));
    assert!(parse_err("backing=").contains("path"));
    assert_eq!(parse("control=.ctl").unwrap().control_name, ".ctl");
    for bad in ["control=", "control=a/b", "control=..", "control=."] {
        assert!(parse_err(bad).contains("file name"), "{bad}");
    }
}

#[test]
fn fstab_words_are_ignored_and_vfs_flags_honoured() {
    let d = Config::default();
    let c = parse("rw,defaults,noauto,nofail,user,users,_netdev,x-systemd.automount,x-systemd.mount-timeout=30,comment=x,relatime,auto")
        .unwrap();
    assert_eq!(c, d);
    let c = parse("ro,noexec,nosuid,nodev,noatime,sync,dirsync").unwrap();
    let f = c.mount_flags;
    assert!(f.read_only && f.noexec && f.nosuid && f.nodev && f.sync && f.dirsync);
    assert_eq!(f.atime, AtimeMode::NoAtime);
    let atime = |o: &str| parse(o).unwrap().mount_flags.atime;
    assert_eq!(atime("noatime,strictatime"), AtimeMode::Strict);
    assert_eq!(atime("strictatime,relatime"), AtimeMode::Relatime);
    assert_eq!(atime("relatime,noatime"), AtimeMode::NoAtime);
    let c = parse("ro,rw,suid,dev").unwrap();
    assert!(!c.mount_flags.read_only && !c.mount_flags.nosuid && !c.mount_flags.nodev);
    assert!(parse_err("noexec=1").contains("takes no value"));
}

#[test]
fn unknown_options_are_named() {
    let m = parse_err("size=1g,szie=2g");
    assert!(m.contains("unknown option `szie=2g`"), "{m}");
    assert!(m.contains("size="), "lists the accepted options: {m}");
    assert_eq!(parse("szie=1").unwrap_err().option, "szie=1");
}

#[test]
fn later_options_win_and_empty_words_are_harmless() {
    let c = parse("size=1g,,size=2g,").unwrap();
    assert_eq!(c.size, 2 << 30);
    assert_eq!(parse("").unwrap(), Config::default());
}

#[test]
fn every_word_of_the_table_is_accepted() {
    for o in MOUNT_OPTIONS {
        match o.kind {
            Kind::Flags(_) | Kind::Ignored => {
                for w in o.words() {
                    let w = w.replace('*', "systemd.requires").replace("...", "x");
                    assert!(parse(&w).is_ok(), "{w} from `{}` is refused", o.form);
                }
            }
            Kind::Switch(_) => assert!(parse(o.form).is_ok(), "{}", o.form),
            Kind::Value { .. } => {
                let name = o.form.split('=').next().unwrap();
                assert!(parse_err(name).contains("needs a value"), "{name}");
            }
            Kind::Elsewhere => assert!(parse_err(o.form).contains("goes with")),
        }
    }
}

#[test]
fn the_threads_range_in_the_text_is_the_constant() {
    let m = parse_err("threads=0");
    assert!(m.contains(&format!("from 1 to {MAX_THREADS}")), "{m}");
    assert!(parse(&format!("threads={MAX_THREADS}")).is_ok());
    assert!(parse(&format!("threads={}", MAX_THREADS + 1)).is_err());
}

#[test]
fn what_the_parser_gives_always_validates() {
    for opts in [
        "",
        "size=0,nr_inodes=0",
        "block_size=128k,threads=1,accept_threshold=1",
        "pool_limit=100%,mode=7777,uid=0,gid=0,control=x",
        "backing=none,max_dirty=kernel,cache=none,dedup=off",
    ] {
        assert_eq!(parse(opts).unwrap().validate(), Ok(()), "{opts}");
    }
}

#[test]
fn recompression_options() {
    use std::time::Duration;
    let d = parse("").unwrap();
    assert_eq!(d.recompress_after, Some(Duration::from_secs(120)));
    assert_eq!((d.recompress_level, d.recompress_unit), (3, 64 << 10));
    let c = parse("recompress_after=30s,recompress_level=9,recompress_unit=16k").unwrap();
    assert_eq!(c.recompress_after, Some(Duration::from_secs(30)));
    assert_eq!((c.recompress_level, c.recompress_unit), (9, 16 << 10));
    assert_eq!(
        parse("recompress_after=off").unwrap().recompress_after,
        None
    );
    for bad in [
        "recompress_after=0",
        "recompress_after=soon",
        "recompress_after=1.5m",
    ] {
        assert!(parse_err(bad).contains("duration"), "{bad}");
    }
    for bad in [
        "recompress_level=0",
        "recompress_level=20",
        "recompress_level=x",
    ] {
        assert!(parse_err(bad).contains("from 1 to 19"), "{bad}");
    }
    for bad in [
        "recompress_unit=2k",
        "recompress_unit=128k",
        "recompress_unit=12k",
    ] {
        assert!(parse_err(bad).contains("4k to 64k"), "{bad}");
    }
}

#[test]
fn default_dirty_window_follows_the_kernel_limit_with_a_floor() {
    use crate::config::default_max_dirty;
    const G: u64 = 1 << 30;
    // The kernel's threshold on the 24 GiB bench VM, 4.96 GB: 4 GiB, which
    // the kernel accepts (a value above its threshold is EINVAL).
    assert_eq!(default_max_dirty(Some(1_211_475 * 4096)), 4 * G);
    assert_eq!(default_max_dirty(Some(4 * G)), 4 * G);
    // Small machines and unknown thresholds keep the 1 GiB floor.
    assert_eq!(default_max_dirty(Some(400 << 20)), G);
    assert_eq!(default_max_dirty(None), G);
}
