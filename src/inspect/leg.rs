//! The leg of a faultline connection a capture interface recorded, as reports name it.
//!
//! The crate has one leg type, [`crate::direction::Leg`]. A capture may also hold flows that are
//! on no faultline leg (classic pcap has no interfaces; a foreign pcapng names its own): those are
//! `None`, named "unknown" in text and JSON.

use serde::Serializer;

use crate::direction::Leg;

/// The leg whose pcapng interface faultline names `name` ("client leg", "upstream leg").
pub fn of_interface(name: Option<&str>) -> Option<Leg> {
    let name = name?;
    [Leg::Client, Leg::Upstream]
        .into_iter()
        .find(|leg| leg.to_string() == name)
}

/// `client`, `upstream` or `unknown`.
pub fn name(leg: Option<Leg>) -> &'static str {
    leg.map_or("unknown", Leg::as_str)
}

/// Serializes an `Option<Leg>` as [`name`] does (for `#[serde(serialize_with)]`).
pub fn serialize<S: Serializer>(leg: &Option<Leg>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(name(*leg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_and_report_names() {
        assert_eq!(of_interface(Some("client leg")), Some(Leg::Client));
        assert_eq!(of_interface(Some("upstream leg")), Some(Leg::Upstream));
        assert_eq!(of_interface(Some("eth0")), None);
        assert_eq!(of_interface(None), None);
        assert_eq!(
            [Some(Leg::Client), Some(Leg::Upstream), None].map(name),
            ["client", "upstream", "unknown"]
        );
    }
}
