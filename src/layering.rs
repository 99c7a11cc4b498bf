//! Keeps the layering of `DESIGN.md` true: it reads every `crate::…` path in `src/` (in `use`
//! lines and in code) and fails, naming the file and line, when a module reaches upward.

use std::path::{Path, PathBuf};

/// (module, the modules it must not import, why).
const RULES: &[(&str, &[&str], &str)] = &[
    (
        "event",
        &["intake", "store", "pipeline", "web", "manage", "api"],
        "the typed event, normalization and grouping are pure",
    ),
    (
        "store",
        &[
            "intake", "pipeline", "web", "alert", "forward", "tail", "manage", "api",
        ],
        "the store knows nothing of HTTP, the UI, mail or the network",
    ),
    ("ids", &["*"], "low value types import nothing of picket"),
    (
        "conn",
        &[
            "event", "intake", "store", "pipeline", "web", "manage", "api", "alert", "forward",
            "tail",
        ],
        "connections know HTTP and the configuration, nothing of what is served over them",
    ),
    (
        "config",
        &[
            "intake",
            "store",
            "pipeline",
            "web",
            "manage",
            "alert",
            "forward",
            "tail",
            "server",
            "supervisor",
            "status",
            "outbound",
            "janitor",
            "api",
        ],
        "the configuration is plain values that everything else reads",
    ),
    (
        "identity",
        &["intake", "store", "pipeline", "web", "manage", "api"],
        "proving who someone is knows nothing of what they may do",
    ),
    (
        "web",
        &["intake", "api"],
        "the web UI acts through the management layer",
    ),
    (
        "api",
        &["web"],
        "the Web API acts through the management layer",
    ),
];

/// Modules nothing else may import.
const TOP: &[&str] = &["main", "cli"];

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src/");
    let first = rel.components().next().expect("a path");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// The top-level modules a line names as `crate::module`, also inside `use crate::{a, b}`.
fn imports(line: &str, in_crate_braces: &mut bool) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut out = Vec::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(inner) = rest.strip_prefix('{') {
            *in_crate_braces = !inner.contains('}');
            out.extend(inner.split(',').map(|p| ident(p.trim())));
        } else {
            out.push(ident(rest));
        }
    }
    if *in_crate_braces && !code.contains("crate::") {
        out.extend(code.split(',').map(|p| ident(p.trim())));
        if code.contains('}') {
            *in_crate_braces = false;
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

/// Every upward import in `src/`, as "file:line: what".
pub fn violations(src: &Path) -> Vec<String> {
    let mut all = Vec::new();
    files(src, &mut all);
    all.sort();
    let mut found = Vec::new();
    for file in all {
        let module = module_of(src, &file);
        let text = std::fs::read_to_string(&file).expect("readable source");
        let mut braces = false;
        for (n, line) in text.lines().enumerate() {
            for target in imports(line, &mut braces) {
                if target == module {
                    continue;
                }
                let place = format!("{}:{}", file.display(), n + 1);
                if TOP.contains(&target.as_str()) && !TOP.contains(&module.as_str()) {
                    found.push(format!(
                        "{place}: {module} imports {target}, which nothing may"
                    ));
                }
                for (low, forbidden, why) in RULES {
                    if module == *low
                        && (forbidden.contains(&"*") || forbidden.contains(&target.as_str()))
                    {
                        found.push(format!("{place}: {module} imports {target} ({why})"));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn no_module_imports_upward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(found.is_empty(), "upward imports:\n{}", found.join("\n"));
}

#[test]
fn an_upward_import_is_found() {
    let mut braces = false;
    assert_eq!(
        imports("use crate::intake::http::Intake;", &mut braces),
        ["intake"]
    );
    assert_eq!(
        imports("use crate::{store, web::Web};", &mut braces),
        ["store", "web"]
    );
    assert_eq!(imports("use crate::{", &mut braces), Vec::<String>::new());
    assert!(braces);
    assert_eq!(
        imports("    pipeline::Queue, web,", &mut braces),
        ["pipeline", "web"]
    );
    assert_eq!(imports("};", &mut braces), Vec::<String>::new());
    assert!(!braces);
    assert_eq!(
        imports(
            "let x = crate::intake::route(p); // crate::web",
            &mut braces
        ),
        ["intake"]
    );
}
