//! The text a read of the control file returns, and its parser.
//!
//! Format (stable, for scripts as much as for `zsfs stats`):
//!
//! ```text
//! orig_data_size 1073741824        <- one `name value` per line, names from
//! compr_data_size 398458880           zram's mm_stat/bd_stat, then zswap's,
//! ...                                 then the filesystem's own
//!                                  <- one blank line
//! class size 0% 10% ... 100% obj_allocated obj_used zspages pages_used pages_per_zspage
//!     3   80   0   0 ...                     <- zsmalloc's debugfs `classes` table
//! ```
//!
//! Every field is listed in [`FIELDS`] with its unit and meaning; the README
//! table is generated from the same words.

use std::fmt::Write as _;

/// What a field counts; drives human formatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    /// 4 KiB pages, as zram counts `bd_*` and `huge_pages`.
    Pages,
    /// Blocks of the filesystem's `block_size`.
    Blocks,
    Count,
    /// A decimal ratio, printed with two decimals.
    Ratio,
}

/// Whether a field only grows (a count of events since mount) or is a
/// level that goes up and down; monitoring takes rates of the first kind
/// only (Prometheus: `counter` vs `gauge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One documented field of the control file.
pub struct FieldDoc {
    pub name: &'static str,
    pub unit: Unit,
    pub kind: Kind,
    pub doc: &'static str,
}

macro_rules! fields {
    ($($name:literal $unit:ident $kind:ident $doc:literal,)*) => {
        /// Every `name value` line, in the order a read prints them.
        pub const FIELDS: &[FieldDoc] = &[
            $(FieldDoc { name: $name, unit: Unit::$unit, kind: Kind::$kind, doc: $doc },)*
        ];
    };
}

fields! {
    // zram mm_stat
    "orig_data_size" Bytes Gauge "Uncompressed bytes of the blocks stored, same-filled ones included (holes are not stored).",
    "compr_data_size" Bytes Gauge "Compressed bytes of the objects in the pool and in the backing file, each object shared by dedup once.",
    "mem_used_total" Bytes Gauge "Memory the pool holds from the OS right now (its zspages' pages).",
    "mem_limit" Bytes Gauge "The pool limit (`pool_limit=`); 0 means none.",
    "mem_used_max" Bytes Gauge "Peak of mem_used_total since mount or `reset mem_used_max`.",
    "same_pages" Blocks Gauge "Blocks whose bytes are all the same, stored as that byte with no pool object.",
    "pages_compacted" Pages Counter "Pages given back by compaction, cumulative.",
    "huge_pages" Blocks Gauge "Blocks that did not compress and are stored raw.",
    // dedup (zram's out-of-tree dedup patch called these dup_data_size, meta_data_size)
    "dedup_pages" Blocks Gauge "Blocks served by a pool object another block already holds (identical content, `dedup=on`).",
    "dedup_data_size" Bytes Gauge "Object bytes those blocks would take without dedup (not in compr_data_size).",
    "dedup_index_bytes" Bytes Gauge "Memory of the dedup index's hash tables, outside mem_used_total (the keys and reference counts are in each object's word: recomp_meta_bytes).",
    "dedup_collisions" Count Counter "Hash matches whose content differed (stored separately), cumulative.",
    // recompression (zram: recomp_algorithm, idle marking; zram's mm_stat has no recomp_* names)
    "recomp_pages" Blocks Gauge "Blocks held in zstd units: idle data recompressed (`recompress_after=`, `recompress idle|all`).",
    "recomp_data_size" Bytes Gauge "Pool bytes of those units (part of compr_data_size).",
    "recomp_orig_size" Bytes Gauge "Uncompressed bytes of the blocks in units (recomp_pages times block_size).",
    "recomp_skipped" Count Counter "Runs of blocks zstd did not make 1/8 smaller, left as they were and not tried again, cumulative.",
    "recomp_failed" Count Counter "Runs left as they were because the pool refused the unit (its limit) or a block could not be read, cumulative.",
    "recomp_reads" Blocks Counter "Block reads served from zstd units, cumulative.",
    "idle_pages" Blocks Gauge "Blocks the last recompression pass found idle (not written or read since the pass before) and took.",
    "recomp_meta_bytes" Bytes Gauge "Memory of the per-object words (access marks, dedup keys and reference counts, unit reference counts), outside mem_used_total.",
    // zram bd_stat
    "bd_count" Pages Gauge "Pool data now in the backing file, in 4 KiB units.",
    "bd_reads" Pages Counter "Reads from the backing file, in 4 KiB units.",
    "bd_writes" Pages Counter "Writes to the backing file, in 4 KiB units.",
    // zswap
    "written_back_pages" Pages Counter "Zspage pages written back to the backing file, cumulative.",
    "pool_limit_hit" Count Counter "Times an allocation found the pool at its limit.",
    "reject_compress_poor" Blocks Counter "Blocks that compressed too poorly to share a page (stored raw), cumulative.",
    // shrinker
    "shrinker_runs" Count Counter "Times the shrinker woke and wrote back.",
    "second_chance" Count Counter "Referenced zspages the shrinker rotated instead of writing back.",
    "checksum_failures" Count Counter "Backing-file records whose checksum did not match (the read failed with EIO).",
    // the filesystem
    "files" Count Gauge "Regular files.",
    "directories" Count Gauge "Directories, the root included.",
    "logical_bytes" Bytes Gauge "Bytes counted against `size=`: allocated file blocks, holes excluded, as `df` shows them.",
    "block_size" Bytes Gauge "Bytes per file block (`block_size=`).",
    "compr_ratio" Ratio Gauge "orig_data_size / compr_data_size.",
    "mem_saved" Bytes Gauge "orig_data_size minus mem_used_total: what holding the data uncompressed would have cost more.",
}

/// Look a field up by name.
pub fn field(name: &str) -> Option<&'static FieldDoc> {
    FIELDS.iter().find(|f| f.name == name)
}

/// Labels of zsmalloc's fullness groups, in table order.
pub const FULLNESS_LABELS: [&str; 12] = [
    "0%", "10%", "20%", "30%", "40%", "50%", "60%", "70%", "80%", "90%", "99%", "100%",
];

/// One row of the `classes` table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassRow {
    pub class: u64,
    pub size: u64,
    /// Zspages in each fullness group, in [`FULLNESS_LABELS`] order.
    pub fullness: [u64; 12],
    pub obj_allocated: u64,
    pub obj_used: u64,
    pub zspages: u64,
    pub pages_used: u64,
    pub pages_per_zspage: u64,
}

/// A parsed (or to-be-printed) control file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// `name value` pairs in print order. Values are kept as text so a newer
    /// daemon's fields survive an older CLI.
    pub fields: Vec<(String, String)>,
    pub classes: Vec<ClassRow>,
}

const CLASS_HEADER_LEAD: [&str; 2] = ["class", "size"];
const CLASS_HEADER_TAIL: [&str; 5] = [
    "obj_allocated",
    "obj_used",
    "zspages",
    "pages_used",
    "pages_per_zspage",
];

impl Report {
    /// A field's value as a number (`None` if absent or not a number).
    pub fn get(&self, name: &str) -> Option<f64> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.parse().ok())
    }

    pub fn get_u64(&self, name: &str) -> Option<u64> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.parse().ok())
    }

    pub fn push(&mut self, name: &str, value: impl ToString) {
        self.fields.push((name.to_string(), value.to_string()));
    }

    /// The control file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, value) in &self.fields {
            let _ = writeln!(out, "{name} {value}");
        }
        out.push('\n');
        let header: Vec<&str> = CLASS_HEADER_LEAD
            .iter()
            .chain(FULLNESS_LABELS.iter())
            .chain(CLASS_HEADER_TAIL.iter())
            .copied()
            .collect();
        let _ = writeln!(out, "{}", header.join(" "));
        for c in &self.classes {
            let mut cols = vec![c.class, c.size];
            cols.extend_from_slice(&c.fullness);
            cols.extend_from_slice(&[
                c.obj_allocated,
                c.obj_used,
                c.zspages,
                c.pages_used,
                c.pages_per_zspage,
            ]);
            let line: Vec<String> = cols.iter().map(u64::to_string).collect();
            let _ = writeln!(out, "{}", line.join(" "));
        }
        out
    }

    /// Parse what [`Report::render`] printed.
    pub fn parse(text: &str) -> Result<Report, String> {
        let mut report = Report::default();
        let mut lines = text.lines();
        for line in lines.by_ref() {
            if line.trim().is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(' ')
                .ok_or_else(|| format!("control file line {line:?} is not `name value`"))?;
            report.push(name, value.trim());
        }
        let Some(header) = lines.next() else {
            return Ok(report);
        };
        let ncols = CLASS_HEADER_LEAD.len() + FULLNESS_LABELS.len() + CLASS_HEADER_TAIL.len();
        if header.split_whitespace().count() != ncols {
            return Err(format!("unexpected classes header {header:?}"));
        }
        for line in lines.filter(|l| !l.trim().is_empty()) {
            let nums = line
                .split_whitespace()
                .map(str::parse::<u64>)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| format!("classes row {line:?} is not numbers"))?;
            if nums.len() != ncols {
                return Err(format!(
                    "classes row {line:?} has {} columns, not {ncols}",
                    nums.len()
                ));
            }
            let mut fullness = [0; 12];
            fullness.copy_from_slice(&nums[2..14]);
            report.classes.push(ClassRow {
                class: nums[0],
                size: nums[1],
                fullness,
                obj_allocated: nums[14],
                obj_used: nums[15],
                zspages: nums[16],
                pages_used: nums[17],
                pages_per_zspage: nums[18],
            });
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_parse_round_trip() {
        let mut r = Report::default();
        for (i, f) in FIELDS.iter().enumerate() {
            if f.unit == Unit::Ratio {
                r.push(f.name, "2.50");
            } else {
                r.push(f.name, i * 1000);
            }
        }
        r.classes.push(ClassRow {
            class: 11,
            size: 208,
            fullness: [0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 5],
            obj_allocated: 472,
            obj_used: 400,
            zspages: 8,
            pages_used: 24,
            pages_per_zspage: 3,
        });
        let text = r.render();
        assert_eq!(Report::parse(&text), Ok(r.clone()));
        assert_eq!(r.get_u64("compr_data_size"), Some(1000));
        assert_eq!(r.get("compr_ratio"), Some(2.5));
    }

    #[test]
    fn field_names_are_unique_and_documented() {
        for (i, f) in FIELDS.iter().enumerate() {
            assert!(!f.doc.is_empty());
            assert!(f.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            assert!(
                FIELDS[i + 1..].iter().all(|g| g.name != f.name),
                "{}",
                f.name
            );
        }
    }

    #[test]
    fn parse_rejects_garbage() {
        assert!(Report::parse("novalue\n").is_err());
        assert!(Report::parse("a 1\n\nclass size\n").is_err());
    }
}

#[cfg(test)]
mod readme {
    /// The README is the user's manual: every field a read prints must be
    /// documented there.
    #[test]
    fn readme_documents_every_field() {
        let readme = include_str!("../../README.md");
        for f in super::FIELDS {
            assert!(
                readme.contains(&format!("| `{}` |", f.name)),
                "README.md's control-file table lacks `{}`",
                f.name
            );
        }
    }
}
