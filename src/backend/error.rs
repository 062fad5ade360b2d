//! The backend's one error type, and the one place it becomes an HTTP answer:
//! `application/problem+json` (RFC 9457) with the catalogue's `fejlkode` and `fejltekst`.
//! The caller sees a code and a sentence; the log sees the cause (never a CPR number).

use actix_web::{HttpResponse, ResponseError, http::StatusCode};

use super::store::StoreError;
use crate::catalog::Fejl;
use crate::vos::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A refusal with a catalogue code; `detail` says what in the request caused it and must
    /// never contain personal data.
    #[error("{fejl:?}")]
    Refused { fejl: Fejl, detail: Option<String> },
    /// The store failed: logged with its cause, answered as `intern_fejl`.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The blocking pool is gone (shutting down).
    #[error("blocking pool: {0}")]
    Blocking(#[from] actix_web::error::BlockingError),
}

impl From<Fejl> for ApiError {
    fn from(fejl: Fejl) -> Self {
        ApiError::Refused { fejl, detail: None }
    }
}

impl ApiError {
    pub fn with_detail(fejl: Fejl, detail: impl Into<String>) -> Self {
        ApiError::Refused {
            fejl,
            detail: Some(detail.into()),
        }
    }

    pub fn fejl(&self) -> Fejl {
        match self {
            ApiError::Refused { fejl, .. } => *fejl,
            ApiError::Store(_) | ApiError::Blocking(_) => Fejl::InternFejl,
        }
    }
}

/// The problem+json answer for a catalogue error.
pub fn problem(fejl: Fejl, detail: Option<String>) -> HttpResponse {
    let e = fejl.entry();
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = Problem {
        type_: format!("urn:dk:star:vos:fejl:{}", e.code),
        title: e.text.clone(),
        status: status.as_u16(),
        detail,
        fejlkode: e.code,
        fejltekst: e.text.clone(),
    };
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .json(body)
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.fejl().entry().status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Refused { fejl, detail } => {
                tracing::debug!(fejlkode = fejl.entry().code, "refused");
                problem(*fejl, detail.clone())
            }
            ApiError::Store(_) | ApiError::Blocking(_) => {
                tracing::error!(error = %self, "internal failure");
                problem(Fejl::InternFejl, None)
            }
        }
    }
}
