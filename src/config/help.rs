//! `zsfs --help`'s option list, generated from [`MOUNT_OPTIONS`] so the
//! help cannot name an option the parser refuses or miss one it takes.

use super::options::{MOUNT_OPTIONS, SIZE_NOTE};

/// Column where descriptions start: a form narrower than this shares the
/// line with its description.
const INDENT: usize = 24;
/// The terminal width the text is wrapped to.
const WIDTH: usize = 80;

/// The accepted forms as `--help` text (clap's `after_help`).
pub static OPTIONS_HELP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let mut out = String::from("zsfs options (-o, comma-separated, as for mount -t tmpfs):\n");
    for o in MOUNT_OPTIONS {
        let mut line = format!("  {}", o.form);
        if line.len() + 2 > INDENT {
            // Long lists of words wrap at spaces, then the description follows.
            line = wrap_after("  ", o.form, WIDTH, 2);
            line.push('\n');
            out.push_str(&line);
            line = String::new();
        }
        let pad = INDENT.saturating_sub(line.len());
        line.push_str(&" ".repeat(pad));
        out.push_str(&wrap_after(&line, o.doc, WIDTH, INDENT));
        out.push('\n');
    }
    out.push_str(SIZE_NOTE);
    out
});

/// `prefix` followed by `text`, wrapped at `width`, continuation lines
/// indented by `indent`.
fn wrap_after(prefix: &str, text: &str, width: usize, indent: usize) -> String {
    let mut out = prefix.to_string();
    let mut col = out.len();
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 && col + 1 + word.len() > width {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            col = indent;
        } else if i > 0 {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += word.len();
    }
    out
}
