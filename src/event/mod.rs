//! Events as picket understands them: one typed [`Event`](model::Event), the normalization
//! that turns every lenient and legacy payload shape into it, and the grouping that decides
//! which issue an event belongs to. Pure code: no I/O, no HTTP, no storage.

pub mod derived;
pub mod feedback;
pub mod filters;
pub mod grouping;
pub mod limits;
pub mod model;
pub mod normalize;
pub mod scrub;
pub mod symbolicate;
mod wire;

pub(crate) use wire::Key;

pub use grouping::{Grouping, Strategy};
pub use limits::EventLimits;
pub use model::{Event, Level};
pub use normalize::{NormalizeError, normalize};
