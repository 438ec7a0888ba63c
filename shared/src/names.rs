//! Validated domain names (SPEC §1). Each newtype can only be built through `parse`, so a
//! value of the type is a valid name; the browser form and the server give the same message.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a name was refused. The `Display` text is what the user sees, so it states the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} must be at most {max} characters (got {got})")]
    TooLong {
        what: &'static str,
        max: usize,
        got: usize,
    },
    #[error("{what} must start with {rule}")]
    BadFirst {
        what: &'static str,
        rule: &'static str,
    },
    #[error("{what} may contain only {rule}; {ch:?} is not allowed")]
    BadChar {
        what: &'static str,
        rule: &'static str,
        ch: char,
    },
}

/// CJK unified ideographs (the basic block and extension A) and compatibility ideographs.
fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}')
}

struct Rule {
    what: &'static str,
    max: usize,
    first_ok: fn(char) -> bool,
    first_rule: &'static str,
    rest_ok: fn(char) -> bool,
    rest_rule: &'static str,
}

impl Rule {
    fn check(&self, s: &str) -> Result<(), NameError> {
        let what = self.what;
        let mut chars = s.chars();
        let Some(first) = chars.next() else {
            return Err(NameError::Empty { what });
        };
        let len = s.chars().count();
        if len > self.max {
            return Err(NameError::TooLong {
                what,
                max: self.max,
                got: len,
            });
        }
        if !(self.first_ok)(first) {
            return Err(NameError::BadFirst {
                what,
                rule: self.first_rule,
            });
        }
        if let Some(ch) = chars.find(|&c| !(self.rest_ok)(c)) {
            return Err(NameError::BadChar {
                what,
                rule: self.rest_rule,
                ch,
            });
        }
        Ok(())
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $rule:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses a name, returning the rule it breaks if it is invalid.
            pub fn parse(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                $rule.check(&s)?;
                Ok(Self(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

const RESOURCE_FIRST: &str = "an ASCII letter, a digit or a CJK character";
const RESOURCE_REST: &str = "letters, digits, CJK characters, '_' and '-'";

fn resource_first(c: char) -> bool {
    c.is_ascii_alphanumeric() || is_cjk(c)
}
fn resource_rest(c: char) -> bool {
    c.is_ascii_alphanumeric() || is_cjk(c) || c == '_' || c == '-'
}

name_type!(
    /// Instance name: 1–30 characters; first an ASCII letter, digit or CJK ideograph; then
    /// letters, digits, CJK, `_` or `-`.
    InstanceName,
    Rule {
        what: "instance name",
        max: 30,
        first_ok: resource_first,
        first_rule: RESOURCE_FIRST,
        rest_ok: resource_rest,
        rest_rule: RESOURCE_REST,
    }
);

name_type!(
    /// Dataset name: same rule as instance names.
    DatasetName,
    Rule {
        what: "dataset name",
        max: 30,
        first_ok: resource_first,
        first_rule: RESOURCE_FIRST,
        rest_ok: resource_rest,
        rest_rule: RESOURCE_REST,
    }
);

name_type!(
    /// Training task name: same rule as instance names.
    TaskName,
    Rule {
        what: "task name",
        max: 30,
        first_ok: resource_first,
        first_rule: RESOURCE_FIRST,
        rest_ok: resource_rest,
        rest_rule: RESOURCE_REST,
    }
);

name_type!(
    /// Recall instance name: 1–20 characters; first an ASCII letter or CJK ideograph; then
    /// letters, digits, CJK or `_`.
    RecallInstanceName,
    Rule {
        what: "recall instance name",
        max: 20,
        first_ok: |c| c.is_ascii_alphabetic() || is_cjk(c),
        first_rule: "an ASCII letter or a CJK character",
        rest_ok: |c| c.is_ascii_alphanumeric() || is_cjk(c) || c == '_',
        rest_rule: "letters, digits, CJK characters and '_'",
    }
);

name_type!(
    /// Recall strategy or filter name: 1–20 characters; first an ASCII letter; then ASCII
    /// letters, digits or `_`.
    StrategyName,
    Rule {
        what: "strategy name",
        max: 20,
        first_ok: |c| c.is_ascii_alphabetic(),
        first_rule: "an ASCII letter",
        rest_ok: |c| c.is_ascii_alphanumeric() || c == '_',
        rest_rule: "ASCII letters, digits and '_'",
    }
);

name_type!(
    /// Classification label: ASCII only (SPEC §3), 1–64 printable characters, no path
    /// separators (a label is a folder name on export).
    LabelName,
    Rule {
        what: "label name",
        max: 64,
        first_ok: |c| c.is_ascii_graphic() && !matches!(c, '/' | '\\' | '.'),
        first_rule: "a printable ASCII character other than '/', '\\' or '.'",
        rest_ok: |c| (c.is_ascii_graphic() || c == ' ') && !matches!(c, '/' | '\\'),
        rest_rule: "printable ASCII characters (no '/' or '\\')",
    }
);

/// Checks a name for an instance of the given type: recall instances have their own rule.
pub fn validate_instance_name(kind: InstanceType, name: &str) -> Result<(), NameError> {
    match kind {
        InstanceType::RecommendationRecall => RecallInstanceName::parse(name).map(|_| ()),
        _ => InstanceName::parse(name).map(|_| ()),
    }
}

/// The four instance types (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceType {
    ImageClassification,
    ObjectDetection,
    Ocr,
    RecommendationRecall,
}

impl InstanceType {
    pub const ALL: [InstanceType; 4] = [
        Self::ImageClassification,
        Self::ObjectDetection,
        Self::Ocr,
        Self::RecommendationRecall,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ImageClassification => "image_classification",
            Self::ObjectDetection => "object_detection",
            Self::Ocr => "ocr",
            Self::RecommendationRecall => "recommendation_recall",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Human-readable name for forms and lists.
    pub fn title(self) -> &'static str {
        match self {
            Self::ImageClassification => "Image classification",
            Self::ObjectDetection => "Object detection",
            Self::Ocr => "OCR",
            Self::RecommendationRecall => "Recommendation recall",
        }
    }

    /// Whether datasets of this type hold images with boxes (VOC layout).
    pub fn uses_boxes(self) -> bool {
        matches!(self, Self::ObjectDetection | Self::Ocr)
    }
}

/// The five permissions of SPEC §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    CreateInstance,
    EditInstance,
    LabelInstance,
    TrainInstance,
    ListInstance,
}

impl Permission {
    pub const ALL: [Permission; 5] = [
        Self::CreateInstance,
        Self::EditInstance,
        Self::LabelInstance,
        Self::TrainInstance,
        Self::ListInstance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateInstance => "CreateInstance",
            Self::EditInstance => "EditInstance",
            Self::LabelInstance => "LabelInstance",
            Self::TrainInstance => "TrainInstance",
            Self::ListInstance => "ListInstance",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_follow_the_spec_rule() {
        assert!(InstanceName::parse("flowers_v2-a").is_ok());
        assert!(InstanceName::parse("2024花卉").is_ok());
        assert!(InstanceName::parse("猫").is_ok());
        assert_eq!(
            InstanceName::parse(""),
            Err(NameError::Empty {
                what: "instance name"
            })
        );
        assert!(matches!(
            InstanceName::parse("_x"),
            Err(NameError::BadFirst { .. })
        ));
        assert!(matches!(
            InstanceName::parse("a b"),
            Err(NameError::BadChar { ch: ' ', .. })
        ));
        assert!(InstanceName::parse("a".repeat(30)).is_ok());
        assert!(matches!(
            InstanceName::parse("a".repeat(31)),
            Err(NameError::TooLong { got: 31, .. })
        ));
        // 30 CJK characters are 90 bytes but 30 characters: allowed.
        assert!(InstanceName::parse("猫".repeat(30)).is_ok());
    }

    #[test]
    fn recall_and_strategy_names_are_stricter() {
        assert!(RecallInstanceName::parse("rec_1").is_ok());
        assert!(RecallInstanceName::parse("1rec").is_err());
        assert!(RecallInstanceName::parse("rec-1").is_err());
        assert!(RecallInstanceName::parse("a".repeat(21)).is_err());
        assert!(StrategyName::parse("cf_strategy").is_ok());
        assert!(StrategyName::parse("猫").is_err());
    }

    #[test]
    fn error_messages_state_the_rule() {
        let msg = InstanceName::parse("-bad").unwrap_err().to_string();
        assert_eq!(
            msg,
            "instance name must start with an ASCII letter, a digit or a CJK character"
        );
    }

    #[test]
    fn names_deserialise_only_when_valid() {
        let ok: InstanceName = serde_json::from_str("\"shapes\"").unwrap();
        assert_eq!(ok.as_str(), "shapes");
        assert!(serde_json::from_str::<InstanceName>("\"no spaces\"").is_err());
    }

    #[test]
    fn label_names_are_ascii_without_separators() {
        assert!(LabelName::parse("not alpaca").is_ok());
        assert!(LabelName::parse("lamа").is_err()); // Cyrillic 'а'
        assert!(LabelName::parse("a/b").is_err());
        assert!(LabelName::parse("..").is_err());
    }

    #[test]
    fn types_and_permissions_round_trip() {
        for t in InstanceType::ALL {
            assert_eq!(InstanceType::parse(t.as_str()), Some(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
    }
}
