//! Run-time options: read and change what the `EBB_*` environment variables
//! set at start.

use std::ffi::CString;
use std::fmt;

use crate::ffi;

/// Why [`option_set`] refused a value.  Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// ebb has no option of this name.
    UnknownOption {
        /// The name given.
        name: String,
    },
    /// The option exists but the text is not a value for it (sizes take
    /// `K M G T` suffixes, durations `ms s m`, booleans `1/0`, `true/false`,
    /// `yes/no`, `on/off`).
    InvalidValue {
        /// The option's name.
        name: String,
        /// The text given.
        value: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnknownOption { name } => write!(f, "ebb has no option named {:?}", name),
            Error::InvalidValue { name, value } => {
                write!(
                    f,
                    "{:?} is not a valid value for ebb's option {:?}",
                    value, name
                )
            }
        }
    }
}

impl std::error::Error for Error {}

/// The current value of an option, by its name in lower case (`"decay_ms"`,
/// `"memory_limit"`, ...; see the README's table): sizes in bytes, durations
/// in milliseconds, booleans 0 or 1, strings 1 if set, else 0.  `None` if
/// ebb has no such option.
///
/// ```
/// if std::env::var_os("EBB_DECAY_MS").is_none() && std::env::var_os("EBB_CONF").is_none() {
///     assert_eq!(ebb::option_get("decay_ms"), Some(250));
/// }
/// assert_eq!(ebb::option_get("no_such_option"), None);
/// ```
#[must_use]
pub fn option_get(name: &str) -> Option<i64> {
    let c_name = CString::new(name).ok()?;
    // SAFETY: errno is this thread's; c_name is a valid C string.
    unsafe {
        // -1 is both the error return and a valid value (decay_ms = -1):
        // only errno tells them apart, and only if cleared first.
        *ffi::__errno_location() = 0;
        let value = ffi::ebb_option_get(c_name.as_ptr());
        if value == -1 && *ffi::__errno_location() == ffi::EINVAL {
            None
        } else {
            Some(value)
        }
    }
}

/// Sets an option from text, as the environment would (`"512M"`, `"10s"`,
/// `"1"`).  The value applies from now on, over what the environment said.
///
/// # Errors
///
/// [`Error::UnknownOption`] if ebb has no option `name`,
/// [`Error::InvalidValue`] if `value` is not a value for it; either way
/// nothing changes.
///
/// ```
/// ebb::option_set("decay_ms", "1s").unwrap();
/// assert_eq!(ebb::option_get("decay_ms"), Some(1000));
/// assert!(ebb::option_set("decay_ms", "soon").is_err());
/// ```
pub fn option_set(name: &str, value: &str) -> Result<(), Error> {
    let invalid_value = || Error::InvalidValue {
        name: name.to_owned(),
        value: value.to_owned(),
    };
    let c_name = CString::new(name).map_err(|_| Error::UnknownOption {
        name: name.to_owned(),
    })?;
    let c_value = CString::new(value).map_err(|_| invalid_value())?;
    // SAFETY: both are valid C strings, which ebb only reads.
    if unsafe { ffi::ebb_option_set(c_name.as_ptr(), c_value.as_ptr()) } == 0 {
        return Ok(());
    }
    // ebb answers EINVAL for both: an unknown name is the one option_get
    // does not know.
    if option_get(name).is_none() {
        Err(Error::UnknownOption {
            name: name.to_owned(),
        })
    } else {
        Err(invalid_value())
    }
}
