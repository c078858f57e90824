//! The version policy: semver parsing, the kind of an update (major, minor, patch), and
//! the rules for downgrades and major updates ([`check_update`]).

use std::cmp::Ordering;
use std::fmt;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::Error;

/// What kind of update goes from one version to another, under the old plan's policy:
/// major = breaking (schema or API change), minor = features, patch = fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateKind {
    /// Same version (build metadata aside): nothing to do.
    None,
    /// Fixes only (also a change of pre-release tag within the same `x.y.z`).
    Patch,
    /// New features, backward compatible.
    Minor,
    /// Breaking: schema or API change. Needs a change request.
    Major,
}

impl UpdateKind {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateKind::None => "none",
            UpdateKind::Patch => "patch",
            UpdateKind::Minor => "minor",
            UpdateKind::Major => "major",
        }
    }
}

impl fmt::Display for UpdateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a version as given by an operator or an image tag: `1.4.2`, `v1.4.2`,
/// `2.0.0-rc.1`. `field` names the input in the error (`--to`).
pub fn parse_version(field: &str, text: &str) -> Result<Version, Error> {
    let t = text.trim();
    let t = t.strip_prefix('v').or_else(|| t.strip_prefix('V')).unwrap_or(t);
    Version::parse(t).map_err(|e| Error::invalid(field, format!("{text:?} is not a semantic version ({e})")))
}

/// Classifies `from -> to` by the highest component that changes; build metadata is
/// ignored. Below 1.0.0 a minor change is breaking (semver §4: anything may change), so
/// `0.3.1 -> 0.4.0` is [`UpdateKind::Major`].
pub fn classify(from: &Version, to: &Version) -> UpdateKind {
    if from.major != to.major {
        UpdateKind::Major
    } else if from.minor != to.minor {
        if from.major == 0 { UpdateKind::Major } else { UpdateKind::Minor }
    } else if from.patch != to.patch || from.pre != to.pre {
        UpdateKind::Patch
    } else {
        UpdateKind::None
    }
}

/// What an update is allowed to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionPolicy {
    /// Allow going to an older version (`--force`).
    pub allow_downgrade: bool,
    /// The change request that covers this update, if any.
    pub change_request: Option<String>,
}

/// The decision for `from -> to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionDecision {
    /// The running version.
    pub from: Version,
    /// The target version.
    pub to: Version,
    /// How big the step is.
    pub kind: UpdateKind,
    /// Whether `to` is older than `from` (only with `allow_downgrade`).
    pub downgrade: bool,
    /// Whether a change request is required (major updates and downgrades).
    pub change_required: bool,
}

/// Checks an update against the policy: a downgrade is refused unless forced, a major
/// update (in either direction) is refused without a change request. Precedence is
/// semver's (pre-releases sort before their release; build metadata does not count).
pub fn check_update(from: &Version, to: &Version, policy: &VersionPolicy) -> Result<VersionDecision, Error> {
    let kind = classify(from, to);
    let downgrade = to.cmp_precedence(from) == Ordering::Less;
    if downgrade && !policy.allow_downgrade {
        return Err(Error::Downgrade { from: from.clone(), to: to.clone() });
    }
    let change_required = kind == UpdateKind::Major;
    if change_required && policy.change_request.as_deref().is_none_or(|c| c.trim().is_empty()) {
        return Err(Error::ChangeRequired { from: from.clone(), to: to.clone() });
    }
    Ok(VersionDecision { from: from.clone(), to: to.clone(), kind, downgrade, change_required })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        parse_version("v", s).unwrap()
    }

    #[test]
    fn parses_with_or_without_a_v_and_names_the_field() {
        assert_eq!(v("v1.2.3"), Version::new(1, 2, 3));
        assert_eq!(v(" 2.0.0-rc.1 ").pre.as_str(), "rc.1");
        let err = parse_version("--to", "1.2").unwrap_err();
        assert!(err.to_string().starts_with("--to: \"1.2\" is not a semantic version"), "{err}");
        assert!(err.is_bad_input());
    }

    #[test]
    fn classifies_by_the_highest_changed_component() {
        assert_eq!(classify(&v("1.2.3"), &v("2.0.0")), UpdateKind::Major);
        assert_eq!(classify(&v("1.2.3"), &v("1.3.0")), UpdateKind::Minor);
        assert_eq!(classify(&v("1.2.3"), &v("1.2.4")), UpdateKind::Patch);
        assert_eq!(classify(&v("1.2.3"), &v("1.2.3")), UpdateKind::None);
        assert_eq!(classify(&v("1.2.3+build.1"), &v("1.2.3+build.2")), UpdateKind::None);
        assert_eq!(classify(&v("2.0.0-rc.1"), &v("2.0.0")), UpdateKind::Patch);
        assert_eq!(classify(&v("0.3.1"), &v("0.4.0")), UpdateKind::Major, "below 1.0 a minor bump breaks");
        assert_eq!(classify(&v("0.3.1"), &v("0.3.2")), UpdateKind::Patch);
    }

    #[test]
    fn refuses_a_downgrade_unless_forced() {
        let err = check_update(&v("1.4.0"), &v("1.3.9"), &VersionPolicy::default()).unwrap_err();
        assert_eq!(err.to_string(), "refusing to downgrade from 1.4.0 to 1.3.9 (use --force to allow it)");
        let err = check_update(&v("2.0.0"), &v("2.0.0-rc.1"), &VersionPolicy::default()).unwrap_err();
        assert!(matches!(err, Error::Downgrade { .. }), "a release is newer than its pre-release");
        let forced = VersionPolicy { allow_downgrade: true, change_request: None };
        let d = check_update(&v("1.4.0"), &v("1.3.9"), &forced).unwrap();
        assert!(d.downgrade);
        assert_eq!(d.kind, UpdateKind::Minor);
    }

    #[test]
    fn a_major_update_needs_a_change_request_in_either_direction() {
        let err = check_update(&v("1.9.0"), &v("2.0.0"), &VersionPolicy::default()).unwrap_err();
        assert!(matches!(err, Error::ChangeRequired { .. }));
        assert!(err.to_string().contains("a change request is required"));
        let blank = VersionPolicy { allow_downgrade: false, change_request: Some("  ".into()) };
        assert!(check_update(&v("1.9.0"), &v("2.0.0"), &blank).is_err(), "a blank id is no change request");
        let with = VersionPolicy { allow_downgrade: false, change_request: Some("CR-7".into()) };
        let d = check_update(&v("1.9.0"), &v("2.0.0"), &with).unwrap();
        assert!(d.change_required && !d.downgrade);
        let back = VersionPolicy { allow_downgrade: true, change_request: None };
        assert!(matches!(check_update(&v("2.0.0"), &v("1.9.0"), &back), Err(Error::ChangeRequired { .. })));
        let minor = check_update(&v("1.9.0"), &v("1.10.0"), &VersionPolicy::default()).unwrap();
        assert_eq!((minor.kind, minor.change_required), (UpdateKind::Minor, false));
    }
}
