//! `zsfs [-f] [-o OPTIONS] MOUNTPOINT` (PLACEHOLDER: options parsing and
//! daemonizing come with the CLI work; this mounts with defaults in the
//! foreground).

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let Some(mountpoint) = std::env::args_os().nth(1) else {
        eprintln!("usage: zsfs MOUNTPOINT");
        std::process::exit(2);
    };
    let config = zsfs::config::Config::default();
    match zsfs::fuse_adapter::new_session(&config, std::path::Path::new(&mountpoint)) {
        Ok(session) => {
            if let Err(e) = session.run() {
                eprintln!("zsfs: {e}");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("zsfs: cannot mount {}: {e}", mountpoint.to_string_lossy());
            std::process::exit(1);
        }
    }
}
