//! Customer and terminal identifiers: compact numbers inside, strings outside.

use std::fmt;
use std::str::FromStr;

/// A customer (card) identifier, written `C000123`.
///
/// Identifiers below the population size are known customers; the traffic generator
/// uses higher numbers for customers that the feature store has never seen.
///
/// ```
/// use modelwatch_sim::CustomerId;
/// let id = CustomerId(123);
/// assert_eq!(id.to_string(), "C000123");
/// assert_eq!("C000123".parse::<CustomerId>(), Ok(id));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerId(pub u32);

/// A payment terminal identifier, written `T00042`.
///
/// ```
/// use modelwatch_sim::TerminalId;
/// assert_eq!(TerminalId(42).to_string(), "T00042");
/// assert_eq!("T00042".parse::<TerminalId>(), Ok(TerminalId(42)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TerminalId(pub u32);

/// A string that is not a valid customer or terminal identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id {input:?}: expected {prefix} followed by digits")]
pub struct IdParseError {
    kind: &'static str,
    prefix: char,
    input: String,
}

impl CustomerId {
    /// The index of this customer in the population.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl TerminalId {
    /// The index of this terminal in the population.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "C{:06}", self.0)
    }
}

impl fmt::Display for TerminalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T{:05}", self.0)
    }
}

fn parse_id(input: &str, prefix: char, kind: &'static str) -> Result<u32, IdParseError> {
    let err = || IdParseError {
        kind,
        prefix,
        input: input.chars().take(32).collect(),
    };
    let digits = input.strip_prefix(prefix).ok_or_else(err)?;
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    digits.parse().map_err(|_| err())
}

impl FromStr for CustomerId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_id(s, 'C', "customer").map(Self)
    }
}

impl FromStr for TerminalId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_id(s, 'T', "terminal").map(Self)
    }
}

impl serde::Serialize for CustomerId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl serde::Serialize for TerminalId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_garbage() {
        assert_eq!(CustomerId(7).to_string(), "C000007");
        assert_eq!(CustomerId(1_234_567).to_string(), "C1234567");
        assert_eq!(TerminalId(123_456).to_string(), "T123456");
        assert_eq!("C1234567".parse(), Ok(CustomerId(1_234_567)));
        for bad in ["", "C", "T00001", "C-1", "C12a", "c000001", "C99999999999"] {
            assert!(bad.parse::<CustomerId>().is_err(), "{bad}");
        }
        assert!("C00001".parse::<TerminalId>().is_err());
    }
}
