// Only the conversions touch `ParserError`; the proto types below are always compiled so
// that the wire format does not depend on which features an endpoint was built with.
#[cfg(feature = "sql")]
use datafusion::sql::sqlparser::parser::ParserError;

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ParserErrorProto {
    #[prost(oneof = "ParserErrorInnerProto", tags = "1,2,3")]
    pub inner: Option<ParserErrorInnerProto>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParserErrorInnerProto {
    #[prost(string, tag = "1")]
    TokenizerError(String),
    #[prost(string, tag = "2")]
    ParserError(String),
    #[prost(bool, tag = "3")]
    RecursionLimitExceeded(bool),
}

/// Mirrors `ParserError`'s `Display` without needing the type itself, so that endpoints built
/// without the `sql` feature can still surface the message an error carried over the wire.
impl std::fmt::Display for ParserErrorProto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let msg = match self.inner {
            Some(ParserErrorInnerProto::TokenizerError(ref msg)) => msg.as_str(),
            Some(ParserErrorInnerProto::ParserError(ref msg)) => msg.as_str(),
            Some(ParserErrorInnerProto::RecursionLimitExceeded(_)) => "recursion limit exceeded",
            None => "Malformed protobuf message",
        };
        write!(f, "sql parser error: {msg}")
    }
}

#[cfg(feature = "sql")]
impl ParserErrorProto {
    pub fn from_parser_error(err: &ParserError) -> Self {
        match err {
            ParserError::TokenizerError(msg) => ParserErrorProto {
                inner: Some(ParserErrorInnerProto::TokenizerError(msg.to_string())),
            },
            ParserError::ParserError(msg) => ParserErrorProto {
                inner: Some(ParserErrorInnerProto::ParserError(msg.to_string())),
            },
            ParserError::RecursionLimitExceeded => ParserErrorProto {
                inner: Some(ParserErrorInnerProto::RecursionLimitExceeded(true)),
            },
        }
    }

    pub fn to_parser_error(&self) -> ParserError {
        let Some(ref inner) = self.inner else {
            return ParserError::ParserError("Malformed protobuf message".to_string());
        };

        match inner {
            ParserErrorInnerProto::TokenizerError(msg) => {
                ParserError::TokenizerError(msg.to_string())
            }
            ParserErrorInnerProto::ParserError(msg) => ParserError::ParserError(msg.to_string()),
            ParserErrorInnerProto::RecursionLimitExceeded(_) => ParserError::RecursionLimitExceeded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::parser::ParserError;
    use prost::Message;

    #[test]
    fn test_parser_error_roundtrip() {
        let test_cases = vec![
            ParserError::ParserError("syntax error".to_string()),
            ParserError::TokenizerError("tokenizer error".to_string()),
            ParserError::RecursionLimitExceeded,
        ];

        for original_error in test_cases {
            let proto = ParserErrorProto::from_parser_error(&original_error);
            let proto = ParserErrorProto::decode(proto.encode_to_vec().as_ref()).unwrap();
            let recovered_error = proto.to_parser_error();

            assert_eq!(original_error.to_string(), recovered_error.to_string());
            // The proto's own `Display` is what endpoints built without `sql` fall back to, so it
            // must stay in sync with `ParserError`'s.
            assert_eq!(original_error.to_string(), proto.to_string());
        }
    }

    #[test]
    fn test_malformed_protobuf_message() {
        let malformed_proto = ParserErrorProto { inner: None };
        let recovered_error = malformed_proto.to_parser_error();
        assert!(matches!(recovered_error, ParserError::ParserError(_)));
        assert_eq!(recovered_error.to_string(), malformed_proto.to_string());
    }
}
