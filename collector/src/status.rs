//! The one place where collector errors become gRPC statuses, so every handler answers alike.

use tonic::Status;

use crate::aggregator::AggregatorError;

/// Why a gRPC request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed and will never be accepted; `field` is its path in the message.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// Field path, e.g. `proxy.instance_id` or `records[3].direction`.
        field: String,
        /// What is wrong and what would be accepted.
        reason: String,
    },
    /// The aggregator refused or failed.
    #[error(transparent)]
    Aggregator(#[from] AggregatorError),
}

impl ApiError {
    /// An INVALID_ARGUMENT naming `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let message = error.to_string();
        match error {
            ApiError::InvalidArgument { .. } => Status::invalid_argument(message),
            // The proxy keeps the batch and retries: saturation is temporary.
            ApiError::Aggregator(
                AggregatorError::PushQueueFull { .. } | AggregatorError::QueryQueueFull { .. },
            ) => Status::resource_exhausted(message),
            ApiError::Aggregator(AggregatorError::Stopped) => Status::unavailable(message),
            ApiError::Aggregator(AggregatorError::Store(source)) => {
                tracing::error!(error = %source, "store failed");
                Status::internal(message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn mapping() {
        let cases = [
            (
                ApiError::invalid("sequence", "must be >= 1"),
                Code::InvalidArgument,
            ),
            (
                AggregatorError::PushQueueFull { capacity: 1 }.into(),
                Code::ResourceExhausted,
            ),
            (
                AggregatorError::QueryQueueFull { capacity: 1 }.into(),
                Code::ResourceExhausted,
            ),
            (AggregatorError::Stopped.into(), Code::Unavailable),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(error).code(), code);
        }
        let status = Status::from(ApiError::invalid("proxy.instance_id", "must not be empty"));
        assert_eq!(
            status.message(),
            "invalid proxy.instance_id: must not be empty"
        );
    }
}
