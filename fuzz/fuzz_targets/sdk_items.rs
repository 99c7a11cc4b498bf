//! The parsers of the envelope items SDKs send besides events, on arbitrary bytes: client
//! reports, sessions and session aggregates, cron check-ins (as items, as the HTTP check-in's
//! query, and their schedules evaluated in their time zone), attachment headers, `user_report`
//! items and the crash-report dialog's form. The first byte picks the parser. None may panic,
//! and what they accept stays within the bounds they promise.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picket::event::feedback;
use picket::ids::EventId;
use picket::intake::{dialog, envelope, items, sessions};
use picket::monitors::{checkin, schedule};

const RECEIVED: f64 = 1.7e9;

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    match which % 8 {
        0 => {
            if let Ok(counts) = items::client_report(payload) {
                for (category, reason, _) in counts {
                    assert!(category.len() <= 64 && reason.len() <= 64);
                }
            }
        }
        1 => {
            let _ = sessions::session(payload, RECEIVED);
        }
        2 => {
            let _ = sessions::aggregates(payload, RECEIVED);
        }
        3 => {
            if let Ok(check_in) = checkin::from_item(payload) {
                assert_eq!(check_in.id.len(), 32);
                if let Some(config) = check_in.config {
                    let tz = schedule::time_zone(&config.timezone).expect("a checked zone");
                    let next = config.schedule.next_after(RECEIVED, tz);
                    assert!(next.is_none_or(|n| n > RECEIVED), "{next:?}");
                    let _ = config.schedule.describe();
                }
            }
        }
        4 => {
            let text = String::from_utf8_lossy(payload);
            let (slug, query) = text.split_once('?').unwrap_or((&text, ""));
            let _ = checkin::from_query(slug, query);
        }
        5 => {
            if let Ok(env) = envelope::parse(payload) {
                for item in &env.items {
                    let attachment = items::AttachmentItem::of(item);
                    assert!(attachment.name.chars().count() <= 512);
                    assert!(attachment.attachment_type.len() <= 64);
                }
            }
        }
        6 => {
            let _ = feedback::from_user_report(payload, RECEIVED, None);
        }
        _ => {
            if let Ok(form) = dialog::Form::read(payload) {
                let _ = feedback::from_dialog(
                    EventId::random(),
                    form.name.as_deref(),
                    form.email.as_deref(),
                    Some(&form.comments),
                    RECEIVED,
                );
            }
        }
    }
});
