//! The filter module the collector serves at `/filter.wasm` (and its digest at
//! `/filter.wasm.sha256`), so a WasmPlugin or an Envoy `remote` code source can fetch it from
//! the collector with no registry. Read and hashed once at start: a module replaced on disk
//! later is not served until a restart, so the pinned digest and the bytes never disagree.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// `--filter-wasm` / `MESHWHY_FILTER_WASM`.
pub const FILTER_WASM: crate::config::Setting = crate::config::Setting {
    flag: "--filter-wasm",
    env: "MESHWHY_FILTER_WASM",
};

/// The file name looked for next to the collector binary when `--filter-wasm` is not given
/// (what `cargo make wasm` writes, and what the container image bakes in).
pub const DEFAULT_FILE_NAME: &str = "meshwhy_filter.wasm";

/// The 4-byte magic and version 1 every WebAssembly binary module starts with.
const WASM_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

/// A loaded module: its bytes and their sha256.
#[derive(Debug, Clone)]
pub struct FilterModule {
    path: PathBuf,
    bytes: Bytes,
    sha256_hex: String,
}

/// Why a module could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// The file could not be read.
    #[error("read the filter module {} ({} / {}): {source}", path.display(), FILTER_WASM.flag, FILTER_WASM.env)]
    Read {
        /// The path given.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a WebAssembly binary module: serving it would only make every proxy
    /// fail to load it, far from the mistake.
    #[error(
        "{} is not a WebAssembly module (no \\0asm version-1 header; {} / {}): build it with `cargo make wasm`",
        path.display(), FILTER_WASM.flag, FILTER_WASM.env
    )]
    NotWasm {
        /// The path given.
        path: PathBuf,
    },
}

impl FilterModule {
    /// Reads and hashes the module at `path`.
    pub fn load(path: &Path) -> Result<Self, ModuleError> {
        let bytes = std::fs::read(path).map_err(|source| ModuleError::Read {
            path: path.to_owned(),
            source,
        })?;
        if !bytes.starts_with(&WASM_HEADER) {
            return Err(ModuleError::NotWasm {
                path: path.to_owned(),
            });
        }
        Ok(Self::from_bytes(path.to_owned(), bytes))
    }

    /// A module from bytes already in memory (tests); `path` is only reported.
    pub fn from_bytes(path: PathBuf, bytes: Vec<u8>) -> Self {
        let sha256_hex = sha256_hex(&bytes);
        Self {
            path,
            bytes: Bytes::from(bytes),
            sha256_hex,
        }
    }

    /// Where it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The module's bytes (cheap to clone: shared).
    pub fn bytes(&self) -> Bytes {
        self.bytes.clone()
    }

    /// Lowercase hex sha256 of the bytes, as WasmPlugin `sha256` and Envoy's `remote.sha256` take it.
    pub fn sha256_hex(&self) -> &str {
        &self.sha256_hex
    }
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// The module to serve when `--filter-wasm` is not given: [`DEFAULT_FILE_NAME`] next to the
/// running binary when that file exists, else none (the endpoints answer 404 saying so).
pub fn default_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.join(DEFAULT_FILE_NAME);
    candidate.is_file().then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_lowercase_hex_sha256() {
        // The FIPS 180-2 test vector for "abc".
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_file_that_is_not_wasm_is_refused_with_the_flag_named() {
        let dir = std::env::temp_dir().join(format!("meshwhy-module-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("not.wasm");
        std::fs::write(&path, b"#!/bin/sh\n").unwrap();
        let message = FilterModule::load(&path).unwrap_err().to_string();
        assert!(message.contains("not a WebAssembly module"), "{message}");
        assert!(
            message.contains("--filter-wasm / MESHWHY_FILTER_WASM"),
            "{message}"
        );
        let missing = FilterModule::load(&dir.join("missing.wasm"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("missing.wasm"), "{missing}");
        let mut module = WASM_HEADER.to_vec();
        module.extend_from_slice(b"rest");
        std::fs::write(&path, &module).unwrap();
        let loaded = FilterModule::load(&path).unwrap();
        assert_eq!(loaded.bytes().as_ref(), module.as_slice());
        assert_eq!(loaded.sha256_hex(), sha256_hex(&module));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
