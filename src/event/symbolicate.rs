//! Source-map symbolication of JavaScript frames: each minified frame (file, 1-based line and
//! column) is mapped through the source map the caller hands over to the original file, line,
//! column and function, with source context from the map's `sourcesContent`; `in_app` follows
//! the original path. A frame that cannot be mapped keeps its minified form and says why; the
//! SDK's frames are kept as `raw_stacktrace`. Runs before grouping, so grouping sees original
//! names that stay the same from build to build. Finding the maps is the caller's business.

use std::sync::Arc;

use sourcemap::{SourceMap, SourceView};

use super::Event;
use super::model::{Frame, Stacktrace};

/// Source lines shown around a mapped frame's line.
const CONTEXT_LINES: usize = 5;

/// A parsed source map, with the minified file it maps when that was uploaded too (it lets
/// minified function names be resolved to original ones).
pub struct MapFile {
    pub map: SourceMap,
    pub minified: Option<SourceView>,
}

impl MapFile {
    /// Parses a source map (an index map is flattened) and, if given, the minified source.
    pub fn parse(map: &[u8], minified: Option<&[u8]>) -> Result<MapFile, String> {
        let map = match sourcemap::decode_slice(map).map_err(|e| format!("bad source map: {e}"))? {
            sourcemap::DecodedMap::Regular(sm) => sm,
            sourcemap::DecodedMap::Index(index) => index
                .flatten()
                .map_err(|e| format!("bad index source map: {e}"))?,
            sourcemap::DecodedMap::Hermes(_) => {
                return Err("Hermes (React Native) source maps are not supported".into());
            }
        };
        let minified = minified
            .and_then(|m| std::str::from_utf8(m).ok())
            .map(|m| SourceView::from_string(m.to_string()));
        Ok(MapFile { map, minified })
    }

    /// Bytes this map holds in memory, roughly, for the cache's budget.
    pub fn weight(&self) -> usize {
        let sources: usize = (0..self.map.get_source_count())
            .filter_map(|i| self.map.get_source_contents(i))
            .map(str::len)
            .sum();
        sources
            + self.map.get_token_count() as usize * 24
            + self.minified.as_ref().map_or(0, |v| v.source().len())
    }
}

/// What identifies the file a frame ran in.
pub struct FrameFile<'a> {
    /// The frame's `abs_path` (a URL for browsers).
    pub abs_path: &'a str,
    /// The debug id the event's `debug_meta` gives this file, if any.
    pub debug_id: Option<&'a str>,
    pub release: Option<&'a str>,
    pub dist: Option<&'a str>,
}

/// Where maps come from: the caller looks them up in the project's uploads.
pub trait MapLookup {
    /// The map for a file, or why there is none (shown on the frame).
    fn map_for(&self, file: &FrameFile<'_>) -> Result<Arc<MapFile>, String>;
}

/// Whether an event's frames are JavaScript that source maps may apply to.
pub fn is_javascript(event: &Event) -> bool {
    matches!(event.platform.as_str(), "javascript" | "node")
}

/// The event's debug ids by code file (`debug_meta.images[]` of type `sourcemap`).
fn debug_ids(event: &Event) -> Vec<(String, String)> {
    let images = event
        .other
        .get("debug_meta")
        .and_then(|m| m.get("images"))
        .and_then(|i| i.as_array());
    images
        .into_iter()
        .flatten()
        .filter(|i| i.get("type").and_then(|t| t.as_str()) == Some("sourcemap"))
        .filter_map(|i| {
            let file = i.get("code_file")?.as_str()?;
            let id = i.get("debug_id")?.as_str()?;
            Some((file.to_string(), id.to_ascii_lowercase()))
        })
        .collect()
}

/// Maps every JavaScript frame of the event's exceptions through `lookup`. Returns how many
/// frames were mapped.
pub fn symbolicate(event: &mut Event, lookup: &dyn MapLookup) -> usize {
    if !is_javascript(event) {
        return 0;
    }
    let ids = debug_ids(event);
    let (release, dist) = (event.release.clone(), event.dist.clone());
    let mut mapped = 0;
    for exception in &mut event.exception {
        let Some(stack) = &mut exception.stacktrace else {
            continue;
        };
        let raw = stack.clone();
        let mut changed = false;
        for frame in &mut stack.frames {
            // Browser SDKs send the script's URL as `filename` and no `abs_path`.
            let path = frame.abs_path.clone().or_else(|| frame.filename.clone());
            let (Some(abs_path), Some(_), Some(_)) = (path, frame.lineno, frame.colno) else {
                continue;
            };
            // `<anonymous>`, `native`, `[eval]`: nothing a map could be uploaded for.
            if !abs_path.contains('/') || abs_path.starts_with('<') {
                continue;
            }
            let file = FrameFile {
                abs_path: &abs_path,
                debug_id: ids
                    .iter()
                    .find(|(f, _)| *f == abs_path)
                    .map(|(_, id)| id.as_str()),
                release: release.as_deref(),
                dist: dist.as_deref(),
            };
            match lookup.map_for(&file).and_then(|m| map_frame(frame, &m)) {
                Ok(()) => {
                    mapped += 1;
                    changed = true;
                }
                Err(why) => {
                    frame.map_error = Some(why);
                    changed = true;
                }
            }
        }
        if changed {
            exception.raw_stacktrace = Some(Stacktrace { frames: raw.frames });
        }
    }
    mapped
}

/// `webpack://app/./src/cart.js` → `src/cart.js`: the path a person reads.
fn readable_path(source: &str) -> String {
    let path = source
        .split_once("://")
        .map_or(source, |(_, rest)| rest.trim_start_matches('/'));
    // A bundler's namespace before `/./` (`webpack://shop/./src`) says nothing to a reader.
    let mut path = path.rsplit_once("/./").map_or(path, |(_, rest)| rest);
    while let Some(rest) = path.strip_prefix("./").or_else(|| path.strip_prefix("../")) {
        path = rest;
    }
    path.to_string()
}

/// Maps one frame in place.
fn map_frame(frame: &mut Frame, file: &MapFile) -> Result<(), String> {
    let (Some(line), Some(col)) = (frame.lineno, frame.colno) else {
        return Err("no line and column".into());
    };
    let (line0, col0) = (
        u32::try_from(line.saturating_sub(1)).map_err(|_| "line out of range")?,
        u32::try_from(col.saturating_sub(1)).map_err(|_| "column out of range")?,
    );
    let token = file
        .map
        .lookup_token(line0, col0)
        .filter(|t| t.get_dst_line() == line0)
        .ok_or_else(|| format!("line {line} column {col} is not in the source map"))?;
    let source = token
        .get_source()
        .ok_or("the source map names no source here")?
        .to_string();
    let (src_line, src_col) = (token.get_src_line(), token.get_src_col());
    // The map's view of the original source indexes its lines once, so each frame costs a
    // lookup, not a walk over the whole file.
    let view = file.map.get_source_view(token.get_src_id());
    let offset_of = |view: &SourceView, line: u32, col: u32| {
        view.get_line(line).map(|l| {
            (l.as_ptr() as usize - view.source().as_ptr() as usize) + (col as usize).min(l.len())
        })
    };
    let function = view
        .and_then(|v| enclosing_function(v.source(), offset_of(v, src_line, src_col)?))
        .or_else(|| match (&frame.function, &file.minified) {
            (Some(minified), Some(view)) => file
                .map
                .get_original_function_name(line0, col0, minified, view)
                .map(str::to_string),
            _ => None,
        })
        .or_else(|| {
            frame
                .function
                .is_none()
                .then(|| token.get_name().map(str::to_string))
                .flatten()
        });
    frame.abs_path = Some(source.clone());
    frame.filename = Some(readable_path(&source));
    frame.lineno = Some(u64::from(src_line) + 1);
    frame.colno = Some(u64::from(src_col) + 1);
    if let Some(f) = function {
        frame.function = Some(f);
    }
    frame.in_app = Some(!source.contains("/node_modules/") && !source.starts_with("node_modules/"));
    frame.pre_context.clear();
    frame.post_context.clear();
    frame.context_line = None;
    frame.map_error = None;
    let Some(view) = view else {
        frame.map_error = Some("the source map has no sourcesContent for this file".into());
        return Ok(());
    };
    let Some(current) = view.get_line(src_line) else {
        frame.map_error = Some(format!(
            "line {} is beyond the original source",
            src_line + 1
        ));
        return Ok(());
    };
    frame.context_line = Some(current.trim_end_matches(['\r', '\n']).to_string());
    let line_text = |n: u32| {
        view.get_line(n)
            .map(|l| l.trim_end_matches(['\r', '\n']).to_string())
    };
    frame.pre_context = (src_line.saturating_sub(CONTEXT_LINES as u32)..src_line)
        .filter_map(line_text)
        .collect();
    frame.post_context = (src_line + 1..src_line + 1 + CONTEXT_LINES as u32)
        .map_while(line_text)
        .collect();
    Ok(())
}

/// Words before `(` that open a block, not a function.
const NOT_FUNCTIONS: [&str; 9] = [
    "if", "for", "while", "switch", "catch", "with", "return", "function", "typeof",
];

/// The name of the function enclosing a byte offset of JavaScript source, found by walking back
/// to the nearest unmatched `{` that opens a function (`function name(…) {`, `name(…) {`,
/// `name = function (…) {`, `name = (…) => {`, `name: function (…) {`). Blocks of `if`, `for`
/// and the like are walked out of. A heuristic over text: braces in strings and comments can
/// mislead it, and then the caller falls back to the map's names.
pub fn enclosing_function(source: &str, offset: usize) -> Option<String> {
    let bytes = source.as_bytes();
    let mut at = offset.min(bytes.len());
    let mut depth = 0i64;
    // Bounded, so a huge file costs at most this much per frame.
    let floor = at.saturating_sub(200_000);
    while at > floor {
        at -= 1;
        match bytes[at] {
            b'}' => depth += 1,
            b'{' if depth > 0 => depth -= 1,
            b'{' => {
                if let Some(name) = function_before(&source[floor..at]) {
                    return Some(name);
                }
            }
            _ => {}
        }
    }
    None
}

/// The function a `{` opens, from the text before it, if it opens one.
fn function_before(head: &str) -> Option<String> {
    let head = head.trim_end();
    // `… => {`: the arrow's name is what it is assigned to.
    let before_params = if let Some(arrow) = head.strip_suffix("=>") {
        let arrow = arrow.trim_end();
        let params = if arrow.ends_with(')') {
            let open = matching_open(arrow)?;
            &arrow[..open]
        } else {
            arrow.trim_end_matches(|c: char| c.is_alphanumeric() || c == '_' || c == '$')
        };
        return assigned_name(params.trim_end().trim_end_matches("async").trim_end());
    } else if head.ends_with(')') {
        &head[..matching_open(head)?]
    } else {
        return None;
    };
    let before_params = before_params.trim_end();
    let name = trailing_identifier(before_params);
    let rest =
        before_params[..before_params.len() - name.as_ref().map_or(0, |n| n.len())].trim_end();
    match name {
        // `function name(…) {`, `x = function name(…) {` and a method `name(…) {`.
        Some(n) if !NOT_FUNCTIONS.contains(&n.as_str()) => Some(n),
        // `function (…) {`: named by what it is assigned to.
        Some(n) if n == "function" => assigned_name(rest.trim_end_matches("async").trim_end()),
        _ => None,
    }
}

/// `name =`, `obj.name =`, `name:` before a function expression → `name`.
fn assigned_name(text: &str) -> Option<String> {
    let text = text.trim_end();
    let text = text
        .strip_suffix('=')
        .filter(|t| !t.ends_with(['=', '!', '<', '>']))
        .or_else(|| text.strip_suffix(':'))?
        .trim_end();
    trailing_identifier(text)
}

/// The JavaScript identifier that `text` ends with, if it ends with one.
fn trailing_identifier(text: &str) -> Option<String> {
    let start = text
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_' || *c == '$')
        .last()
        .map(|(i, _)| i)?;
    let name = &text[start..];
    (!name.starts_with(|c: char| c.is_ascii_digit())).then(|| name.to_string())
}

/// Where the `(` matching the `)` that ends `text` is.
fn matching_open(text: &str) -> Option<usize> {
    let mut depth = 0i64;
    for (i, c) in text.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `function add(a,b){return a+b}` minified to one line, mapped back to `src/math.js`.
    struct One(Arc<MapFile>);

    impl MapLookup for One {
        fn map_for(&self, file: &FrameFile<'_>) -> Result<Arc<MapFile>, String> {
            if file.abs_path.ends_with("app.min.js") {
                Ok(self.0.clone())
            } else {
                Err(format!("no source map for {}", file.abs_path))
            }
        }
    }

    fn map() -> Arc<MapFile> {
        let mut b = sourcemap::SourceMapBuilder::new(Some("app.min.js"));
        let src = b.add_source("webpack://shop/./src/math.js");
        b.set_source_contents(
            src,
            Some("// math\nexport function total(items) {\n  throw new Error('empty cart');\n}\n"),
        );
        let name = b.add_name("total");
        // Minified line 1 column 17 (0-based 16) is original line 3 column 3 (0-based 2, 2).
        b.add_raw(0, 16, 2, 2, Some(src), Some(name), false);
        Arc::new(MapFile {
            map: b.into_sourcemap(),
            minified: None,
        })
    }

    fn event(frames: Vec<Frame>) -> Event {
        Event {
            platform: "javascript".into(),
            exception: vec![crate::event::model::Exception {
                ty: Some("Error".into()),
                stacktrace: Some(Stacktrace { frames }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_minified_frame_maps_to_its_source_with_context() {
        let frame = Frame {
            abs_path: Some("https://shop.example/static/app.min.js".into()),
            filename: Some("/static/app.min.js".into()),
            function: Some("t".into()),
            lineno: Some(1),
            colno: Some(17),
            ..Default::default()
        };
        let other = Frame {
            abs_path: Some("https://cdn.example/vendor.js".into()),
            lineno: Some(1),
            colno: Some(1),
            ..Default::default()
        };
        let mut ev = event(vec![other, frame]);
        assert_eq!(symbolicate(&mut ev, &One(map())), 1);
        let frames = ev.exception[0].frames();
        let f = &frames[1];
        assert_eq!(f.filename.as_deref(), Some("src/math.js"));
        assert_eq!((f.lineno, f.colno), (Some(3), Some(3)));
        assert_eq!(f.function.as_deref(), Some("total"));
        assert_eq!(
            f.context_line.as_deref(),
            Some("  throw new Error('empty cart');")
        );
        assert_eq!(f.pre_context.len(), 2);
        assert_eq!(f.in_app, Some(true));
        assert!(
            frames[0]
                .map_error
                .as_deref()
                .unwrap()
                .contains("no source map")
        );
        let raw = ev.exception[0].raw_stacktrace.as_ref().unwrap();
        assert_eq!(
            raw.frames[1].function.as_deref(),
            Some("t"),
            "the minified frame is kept"
        );
    }

    #[test]
    fn enclosing_functions_are_found_in_the_original_source() {
        let src = "// cart\nexport function computeTotal(items) {\n  for (const i of items) {\n    if (!i.price) {\n      throw new Error('x');\n    }\n  }\n}\nwindow.runShop = async function () {\n  go();\n};\nconst pay = async (x) => {\n  charge(x);\n};\nclass Cart { add(item) { this.items.push(item); } }\n";
        let at = |line: usize, col: usize| {
            src.split_inclusive('\n')
                .take(line)
                .map(str::len)
                .sum::<usize>()
                + col
        };
        assert_eq!(
            enclosing_function(src, at(4, 6)).as_deref(),
            Some("computeTotal")
        );
        assert_eq!(
            enclosing_function(src, at(9, 2)).as_deref(),
            Some("runShop")
        );
        assert_eq!(enclosing_function(src, at(12, 2)).as_deref(), Some("pay"));
        assert_eq!(enclosing_function(src, at(14, 26)).as_deref(), Some("add"));
        assert_eq!(enclosing_function(src, at(0, 3)), None);
    }

    #[test]
    fn a_position_outside_the_map_says_so_and_other_platforms_are_left_alone() {
        let frame = Frame {
            abs_path: Some("https://shop.example/static/app.min.js".into()),
            lineno: Some(40),
            colno: Some(2),
            ..Default::default()
        };
        let mut ev = event(vec![frame.clone()]);
        assert_eq!(symbolicate(&mut ev, &One(map())), 0);
        assert!(
            ev.exception[0].frames()[0]
                .map_error
                .as_deref()
                .unwrap()
                .contains("line 40")
        );
        let mut python = event(vec![frame]);
        python.platform = "python".into();
        assert_eq!(symbolicate(&mut python, &One(map())), 0);
        assert!(python.exception[0].raw_stacktrace.is_none());
    }
}
