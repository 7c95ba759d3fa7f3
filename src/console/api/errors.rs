//! The admin use cases' errors as API errors: each refusal keeps its sentence and gets the
//! status and reason that say what kind of refusal it is.

use crate::admin::records::LookupError;
use crate::admin::{AccountError, KeyError, WebsitesError, WorkspaceError};
use crate::error::{ApiError, Reason};
use crate::store::StoreError;

fn conflict(message: String) -> ApiError {
    ApiError::Conflict {
        reason: Reason::BadRequest,
        message,
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::bad_request(Reason::InvalidField, message)
}

fn not_found(message: String) -> ApiError {
    ApiError::not_found(Reason::NotFound, message)
}

impl From<LookupError> for ApiError {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::UnknownWorkspace(_) => not_found(e.to_string()),
            LookupError::Store(e) => e.into(),
        }
    }
}

impl From<WorkspaceError> for ApiError {
    fn from(e: WorkspaceError) -> Self {
        match e {
            WorkspaceError::BadName => invalid(e.to_string()),
            WorkspaceError::Exists(_) => conflict(e.to_string()),
            WorkspaceError::Store(e) => e.into(),
        }
    }
}

impl From<WebsitesError> for ApiError {
    fn from(e: WebsitesError) -> Self {
        invalid(e.to_string())
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::NoActions | KeyError::NoMatchingAction(_) | KeyError::Websites(_) => {
                invalid(e.to_string())
            }
            KeyError::UnknownKey(_) => not_found(e.to_string()),
            KeyError::Inactive(_) => conflict(e.to_string()),
            KeyError::Hashing(cause) => ApiError::Internal(cause),
            KeyError::Store(e) => e.into(),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Empty(_) => ApiError::bad_request(Reason::MissingField, e.to_string()),
            AccountError::LabelTaken(_) => conflict(e.to_string()),
            AccountError::NotFound(_) => {
                ApiError::not_found(Reason::AccountNotFound, e.to_string())
            }
            AccountError::Sealed(cause) => ApiError::Internal(cause),
            AccountError::Store(StoreError::Conflict) => conflict(e.to_string()),
            AccountError::Store(e) => e.into(),
        }
    }
}

impl From<crate::admin::usage::UsageError> for ApiError {
    fn from(e: crate::admin::usage::UsageError) -> Self {
        match e {
            crate::admin::usage::UsageError::UnknownWorkspace(_) => not_found(e.to_string()),
            crate::admin::usage::UsageError::Store(e) => e.into(),
        }
    }
}
