//! Source maps and original sources on arbitrary bytes: parsing a map, mapping frames through
//! it at arbitrary positions, and finding enclosing functions must never panic.
#![no_main]
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use picket::event::Event;
use picket::event::model::{Exception, Frame, Stacktrace};
use picket::event::symbolicate::{self, FrameFile, MapFile, MapLookup};

struct Given(Arc<MapFile>);

impl MapLookup for Given {
    fn map_for(&self, _: &FrameFile<'_>) -> Result<Arc<MapFile>, String> {
        Ok(self.0.clone())
    }
}

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| *b as usize).min(data.len());
    let (head, map) = data.split_at(split);
    if let Ok(text) = std::str::from_utf8(map) {
        for offset in [0, 5, 40, text.len() / 2, text.len(), usize::MAX / 2] {
            let _ = symbolicate::enclosing_function(text, offset);
        }
    }
    let Ok(parsed) = MapFile::parse(map, Some(head)) else {
        return;
    };
    let frames = head
        .chunks(2)
        .map(|p| Frame {
            filename: Some("https://example.test/app.min.js".into()),
            function: Some("t".into()),
            lineno: Some(u64::from(p[0])),
            colno: p.get(1).map(|c| u64::from(*c) * 97),
            ..Default::default()
        })
        .collect();
    let mut event = Event {
        platform: "javascript".into(),
        exception: vec![Exception {
            stacktrace: Some(Stacktrace { frames }),
            ..Default::default()
        }],
        ..Default::default()
    };
    symbolicate::symbolicate(&mut event, &Given(Arc::new(parsed)));
});
