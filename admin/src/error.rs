//! Every way an admin command fails, and the exit code each one gives.
//! Scripts branch on the exit code, so the code follows the class of the
//! failure, never the command: 1 when the broker (or the network) said no,
//! 2 when the command line itself is wrong (as clap exits for its own
//! usage errors), 3 for `cluster health` finding an unhealthy cluster.

use std::fmt;

use spindle_codec::kafka_protocol::ResponseError;

/// The operation failed: a broker error, an unreachable broker, an API the
/// broker does not serve.
pub const EXIT_FAILED: u8 = 1;
/// Bad usage: unknown flag, bad value, bad offset spec. Nothing was sent.
pub const EXIT_USAGE: u8 = 2;
/// `cluster health` ran and the cluster is not healthy.
pub const EXIT_UNHEALTHY: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The command line is wrong; nothing was sent.
    #[error("{0}")]
    Usage(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr}: {what}: {source}")]
    Io {
        addr: String,
        what: &'static str,
        source: std::io::Error,
    },
    /// The broker did not list the API in ApiVersions, or no version both
    /// sides speak.
    #[error("the broker does not support {0}")]
    Unsupported(String),
    /// The broker answered with a Kafka error code.
    #[error("{context}: {}", KafkaCode(*.code, .message.as_deref()))]
    Kafka {
        context: String,
        code: i16,
        message: Option<String>,
    },
    /// The broker's bytes are not a valid answer.
    #[error("{0}")]
    Protocol(String),
    /// Some items failed; each was already reported with the others' results.
    #[error("{0}")]
    Failed(String),
    /// `cluster health`: the report was printed, the cluster is unhealthy.
    #[error("{0}")]
    Unhealthy(String),
}

impl AdminError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Usage(_) => EXIT_USAGE,
            AdminError::Unhealthy(_) => EXIT_UNHEALTHY,
            AdminError::Connect { .. }
            | AdminError::Io { .. }
            | AdminError::Unsupported(_)
            | AdminError::Kafka { .. }
            | AdminError::Protocol(_)
            | AdminError::Failed(_) => EXIT_FAILED,
        }
    }

    /// A Kafka error code in a response, or `Ok` for 0.
    pub fn check(
        code: i16,
        message: Option<&str>,
        context: impl FnOnce() -> String,
    ) -> Result<(), AdminError> {
        if code == 0 {
            return Ok(());
        }
        Err(AdminError::Kafka {
            context: context(),
            code,
            message: message.map(str::to_string),
        })
    }
}

pub type Result<T, E = AdminError> = std::result::Result<T, E>;

/// A Kafka error code by the name Kafka's docs and tools use
/// (`UNKNOWN_TOPIC_OR_PARTITION`), the broker's message after it when it
/// sent one.
pub struct KafkaCode<'a>(pub i16, pub Option<&'a str>);

impl fmt::Display for KafkaCode<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", error_name(self.0))?;
        match self.1 {
            Some(m) if !m.is_empty() => write!(f, ": {m}"),
            _ => Ok(()),
        }
    }
}

/// Kafka's name of an error code (`NOT_LEADER_OR_FOLLOWER`), from the
/// generated enum's variant name; `ERROR_<code>` for a code it does not know.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::Unknown(_)) | None => format!("ERROR_{code}"),
        Some(e) => {
            let camel = e.to_string();
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_as_kafka_names_them() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(9999), "ERROR_9999");
        let e = AdminError::Kafka {
            context: "topic t".into(),
            code: 36,
            message: Some("Topic 't' already exists.".into()),
        };
        assert_eq!(
            e.to_string(),
            "topic t: TOPIC_ALREADY_EXISTS: Topic 't' already exists."
        );
        assert_eq!(e.exit_code(), EXIT_FAILED);
    }
}
