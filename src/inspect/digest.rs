//! The digest algorithms content addresses use, and a streaming hasher for each one a well-kept crate implements.
//!
//! git-annex lists many backends; each maps to one [`HashAlgo`]. Those no crate here implements
//! (BLAKE2BP, BLAKE2SP: the parallel BLAKE2 variants) have no [`Hasher`]: a body addressed with
//! them is reported "not checked", never guessed at.

use blake2::digest::consts::{U20, U28, U32, U48, U64};
use digest::DynDigest;
use serde::Serialize;

/// Digest algorithm of a content address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // the names say it: algorithm and output bits
pub enum HashAlgo {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    #[serde(rename = "sha3_224")]
    Sha3_224,
    #[serde(rename = "sha3_256")]
    Sha3_256,
    #[serde(rename = "sha3_384")]
    Sha3_384,
    #[serde(rename = "sha3_512")]
    Sha3_512,
    Skein256,
    Skein512,
    Blake2b160,
    Blake2b224,
    Blake2b256,
    Blake2b384,
    Blake2b512,
    Blake2bp512,
    Blake2s160,
    Blake2s224,
    Blake2s256,
    Blake2sp224,
    Blake2sp256,
    #[serde(rename = "blake3_256")]
    Blake3_256,
    /// XXH3, 64 bits.
    Xxh3,
    /// XXH64 (seed 0), as S3's `x-amz-checksum-xxhash64`.
    Xxh64,
    /// XXH3, 128 bits, as S3's `x-amz-checksum-xxhash128`.
    Xxh128,
    /// CRC-32 (ISO-HDLC, zlib's), as S3's `x-amz-checksum-crc32`.
    Crc32,
    /// CRC-32C (Castagnoli, iSCSI), as S3's `x-amz-checksum-crc32c`.
    Crc32c,
    /// CRC-64/NVME, as S3's `x-amz-checksum-crc64nvme`.
    Crc64nvme,
    /// No digest: the address names the content without hashing it (git-annex WORM, URL keys).
    None,
}

impl HashAlgo {
    /// Every algorithm, for the schema's list of names.
    pub const ALL: [HashAlgo; 31] = [
        HashAlgo::Md5,
        HashAlgo::Sha1,
        HashAlgo::Sha224,
        HashAlgo::Sha256,
        HashAlgo::Sha384,
        HashAlgo::Sha512,
        HashAlgo::Sha3_224,
        HashAlgo::Sha3_256,
        HashAlgo::Sha3_384,
        HashAlgo::Sha3_512,
        HashAlgo::Skein256,
        HashAlgo::Skein512,
        HashAlgo::Blake2b160,
        HashAlgo::Blake2b224,
        HashAlgo::Blake2b256,
        HashAlgo::Blake2b384,
        HashAlgo::Blake2b512,
        HashAlgo::Blake2bp512,
        HashAlgo::Blake2s160,
        HashAlgo::Blake2s224,
        HashAlgo::Blake2s256,
        HashAlgo::Blake2sp224,
        HashAlgo::Blake2sp256,
        HashAlgo::Blake3_256,
        HashAlgo::Xxh3,
        HashAlgo::Xxh64,
        HashAlgo::Xxh128,
        HashAlgo::None,
        HashAlgo::Crc32,
        HashAlgo::Crc32c,
        HashAlgo::Crc64nvme,
    ];

    /// The name in JSON and text (`sha256`, `sha3_256`, `blake2b160`, `none`).
    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Md5 => "md5",
            HashAlgo::Sha1 => "sha1",
            HashAlgo::Sha224 => "sha224",
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha384 => "sha384",
            HashAlgo::Sha512 => "sha512",
            HashAlgo::Sha3_224 => "sha3_224",
            HashAlgo::Sha3_256 => "sha3_256",
            HashAlgo::Sha3_384 => "sha3_384",
            HashAlgo::Sha3_512 => "sha3_512",
            HashAlgo::Skein256 => "skein256",
            HashAlgo::Skein512 => "skein512",
            HashAlgo::Blake2b160 => "blake2b160",
            HashAlgo::Blake2b224 => "blake2b224",
            HashAlgo::Blake2b256 => "blake2b256",
            HashAlgo::Blake2b384 => "blake2b384",
            HashAlgo::Blake2b512 => "blake2b512",
            HashAlgo::Blake2bp512 => "blake2bp512",
            HashAlgo::Blake2s160 => "blake2s160",
            HashAlgo::Blake2s224 => "blake2s224",
            HashAlgo::Blake2s256 => "blake2s256",
            HashAlgo::Blake2sp224 => "blake2sp224",
            HashAlgo::Blake2sp256 => "blake2sp256",
            HashAlgo::Blake3_256 => "blake3_256",
            HashAlgo::Xxh3 => "xxh3",
            HashAlgo::Xxh64 => "xxh64",
            HashAlgo::Xxh128 => "xxh128",
            HashAlgo::Crc32 => "crc32",
            HashAlgo::Crc32c => "crc32c",
            HashAlgo::Crc64nvme => "crc64nvme",
            HashAlgo::None => "none",
        }
    }

    /// Hex digits of a digest (0 for [`HashAlgo::None`]).
    pub fn hex_len(self) -> usize {
        let bits = match self {
            HashAlgo::Md5 => 128,
            HashAlgo::Sha1 | HashAlgo::Blake2b160 | HashAlgo::Blake2s160 => 160,
            HashAlgo::Sha224
            | HashAlgo::Sha3_224
            | HashAlgo::Blake2b224
            | HashAlgo::Blake2s224
            | HashAlgo::Blake2sp224 => 224,
            HashAlgo::Sha256
            | HashAlgo::Sha3_256
            | HashAlgo::Skein256
            | HashAlgo::Blake2b256
            | HashAlgo::Blake2s256
            | HashAlgo::Blake2sp256
            | HashAlgo::Blake3_256 => 256,
            HashAlgo::Sha384 | HashAlgo::Sha3_384 | HashAlgo::Blake2b384 => 384,
            HashAlgo::Sha512
            | HashAlgo::Sha3_512
            | HashAlgo::Skein512
            | HashAlgo::Blake2b512
            | HashAlgo::Blake2bp512 => 512,
            HashAlgo::Xxh3 | HashAlgo::Xxh64 | HashAlgo::Crc64nvme => 64,
            HashAlgo::Xxh128 => 128,
            HashAlgo::Crc32 | HashAlgo::Crc32c => 32,
            HashAlgo::None => 0,
        };
        bits / 4
    }

    /// Why bodies with this algorithm cannot be checked, when they cannot.
    pub fn not_checked(self) -> Option<&'static str> {
        match self {
            HashAlgo::Blake2bp512 | HashAlgo::Blake2sp224 | HashAlgo::Blake2sp256 => {
                Some("no crate implements the parallel BLAKE2 variants (BLAKE2BP, BLAKE2SP)")
            }
            HashAlgo::None => Some("the address carries no digest"),
            _ => None,
        }
    }
}

/// A running digest of one algorithm.
pub enum Hasher {
    /// Any RustCrypto digest.
    Dyn(Box<dyn DynDigest>),
    /// BLAKE3 (its own crate).
    Blake3(Box<blake3::Hasher>),
    /// XXH3 64-bit.
    Xxh3(Box<xxhash_rust::xxh3::Xxh3>),
    /// XXH3 128-bit (same state as the 64-bit one, another finish).
    Xxh128(Box<xxhash_rust::xxh3::Xxh3>),
    /// XXH64, seed 0.
    Xxh64(Box<xxhash_rust::xxh64::Xxh64>),
    /// CRC-32 or CRC-32C (the `crc` crate, slice-by-16 tables).
    Crc32(crc::Digest<'static, u32, crc::Table<16>>),
    /// CRC-64/NVME.
    Crc64(crc::Digest<'static, u64, crc::Table<16>>),
}

/// S3's CRCs from one crate (`crc`, its catalog names the exact parameters S3 documents), with
/// slice-by-16 tables: S3 bodies are hashed once each, so table-driven speed is enough.
static CRC32: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);
static CRC32C: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);
static CRC64NVME: crc::Crc<u64, crc::Table<16>> =
    crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_NVME);

impl Hasher {
    /// A hasher for `algo`; `None` when no crate implements it (see [`HashAlgo::not_checked`]).
    pub fn new(algo: HashAlgo) -> Option<Hasher> {
        let d: Box<dyn DynDigest> = match algo {
            HashAlgo::Md5 => Box::new(md5::Md5::default()),
            HashAlgo::Sha1 => Box::new(sha1::Sha1::default()),
            HashAlgo::Sha224 => Box::new(sha2::Sha224::default()),
            HashAlgo::Sha256 => Box::new(sha2::Sha256::default()),
            HashAlgo::Sha384 => Box::new(sha2::Sha384::default()),
            HashAlgo::Sha512 => Box::new(sha2::Sha512::default()),
            HashAlgo::Sha3_224 => Box::new(sha3::Sha3_224::default()),
            HashAlgo::Sha3_256 => Box::new(sha3::Sha3_256::default()),
            HashAlgo::Sha3_384 => Box::new(sha3::Sha3_384::default()),
            HashAlgo::Sha3_512 => Box::new(sha3::Sha3_512::default()),
            HashAlgo::Skein256 => Box::new(skein::Skein256::<U32>::default()),
            HashAlgo::Skein512 => Box::new(skein::Skein512::<U64>::default()),
            HashAlgo::Blake2b160 => Box::new(blake2::Blake2b::<U20>::default()),
            HashAlgo::Blake2b224 => Box::new(blake2::Blake2b::<U28>::default()),
            HashAlgo::Blake2b256 => Box::new(blake2::Blake2b::<U32>::default()),
            HashAlgo::Blake2b384 => Box::new(blake2::Blake2b::<U48>::default()),
            HashAlgo::Blake2b512 => Box::new(blake2::Blake2b512::default()),
            HashAlgo::Blake2s160 => Box::new(blake2::Blake2s::<U20>::default()),
            HashAlgo::Blake2s224 => Box::new(blake2::Blake2s::<U28>::default()),
            HashAlgo::Blake2s256 => Box::new(blake2::Blake2s256::default()),
            HashAlgo::Blake3_256 => return Some(Hasher::Blake3(Box::default())),
            HashAlgo::Xxh3 => return Some(Hasher::Xxh3(Box::default())),
            HashAlgo::Xxh128 => return Some(Hasher::Xxh128(Box::default())),
            HashAlgo::Xxh64 => {
                return Some(Hasher::Xxh64(Box::new(xxhash_rust::xxh64::Xxh64::new(0))))
            }
            HashAlgo::Crc32 => return Some(Hasher::Crc32(CRC32.digest())),
            HashAlgo::Crc32c => return Some(Hasher::Crc32(CRC32C.digest())),
            HashAlgo::Crc64nvme => return Some(Hasher::Crc64(CRC64NVME.digest())),
            HashAlgo::Blake2bp512
            | HashAlgo::Blake2sp224
            | HashAlgo::Blake2sp256
            | HashAlgo::None => return None,
        };
        Some(Hasher::Dyn(d))
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Dyn(d) => d.update(bytes),
            Hasher::Blake3(h) => {
                h.update(bytes);
            }
            Hasher::Xxh3(h) | Hasher::Xxh128(h) => h.update(bytes),
            Hasher::Xxh64(h) => h.update(bytes),
            Hasher::Crc32(h) => h.update(bytes),
            Hasher::Crc64(h) => h.update(bytes),
        }
    }

    /// The digest, lowercase hex.
    pub fn finish_hex(self) -> String {
        match self {
            Hasher::Dyn(d) => hex::encode(d.finalize()),
            Hasher::Blake3(h) => h.finalize().to_hex().to_string(),
            Hasher::Xxh3(h) => format!("{:016x}", h.digest()),
            Hasher::Xxh128(h) => format!("{:032x}", h.digest128()),
            Hasher::Xxh64(h) => format!("{:016x}", h.digest()),
            Hasher::Crc32(h) => format!("{:08x}", h.finalize()),
            Hasher::Crc64(h) => format!("{:016x}", h.finalize()),
        }
    }
}

/// The digest of `bytes` with `algo`, lowercase hex; `None` when `algo` cannot be checked.
#[cfg(test)]
pub fn hex_of(algo: HashAlgo, bytes: &[u8]) -> Option<String> {
    let mut h = Hasher::new(algo)?;
    h.update(bytes);
    Some(h.finish_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `git annex calckey --backend=B` of a file holding "hello annex\n" (git-annex 10.20261026).
    const CALCKEY: &[(HashAlgo, &str)] = &[
        (HashAlgo::Sha256, "f6bfd632e56d745c5b6ec8db52bf92b11c2666a1fe18d80cf4023bb32541f338"),
        (HashAlgo::Sha224, "932ffc97be1441d86c85d7051a338a42c2a170a077ac441087725531"),
        (HashAlgo::Sha3_256, "2199887926288b1ad93288b7595dc28e4e4078d4bdf5954b25054b00738d9aa9"),
        (HashAlgo::Sha3_224, "a69b3b67c8c4c99f00d1409ff7ba1074355de09305d4aa66d3e60ec1"),
        (HashAlgo::Skein256, "5ec386079c51efbe914379c5fcffc66b1a77b6bab93bee468d594864559e6b6e"),
        (HashAlgo::Blake2b256, "9d9d49f69369894a0316886d5f2c505d4444f011fcd9cbbf6899bfd83d4cd62a"),
        (HashAlgo::Blake2b160, "fafc9b82089bbd5187e5effff036790d53644d49"),
        (HashAlgo::Blake2b224, "421b73fa79d4a264677a4f13b1cd0a9d5f6c1686429ae6b12f90b818"),
        (HashAlgo::Blake2s256, "ee5876421097c809248d2cd7f9bdd19abc9f19fc467420099e27551cd93328ef"),
        (HashAlgo::Blake2s160, "77afb2598956a7b6ebab1cc31050d2464adec918"),
        (HashAlgo::Blake2s224, "02d36b6cf0b1c3fb1520cea3ca134ff5b41c6f0cca0fd0d4b1cad4e8"),
        (HashAlgo::Blake3_256, "48cfda86ba0cb92d6f47fdbca28abf4dd41f9f8ffb335a7931cf1a93be0895a4"),
        (HashAlgo::Xxh3, "4203304699520a93"),
        (HashAlgo::Sha1, "7622984945f8acecd8718b7952677fb271693668"),
        (HashAlgo::Md5, "34b46827e5986ea6aa440e414e8f6c9f"),
        (HashAlgo::Sha384, "7d3cd884412efe79b83ed0f25733d3a5067b99e04160d3970b148af130bafb5f1638c79b34f2a71e26e29af817090345"),
        (HashAlgo::Sha512, "34144cacd8415c366377d4fbcd653a570267988330e19ad021d0037f82005755da6fd90f04fc672fcdbedd9bdfe84e8f95fc42d12eef5ebe33365389cb6c8d89"),
        (HashAlgo::Sha3_384, "3a224de6dcd29f057a4db47f27c8e4bb1851c06580571d2138c516a742946efebd481bf1579856b151d2e6ed5640086c"),
        (HashAlgo::Sha3_512, "f8cf0eb12cc82db1df7c388aa102a85f6cef37b0964856b60c681f241fc1d2b53504f9cf554e64c137fa54392c484eaaca62f097a4cdcd9288bb8f4bc688681a"),
        (HashAlgo::Skein512, "3fe54b9400cb649eba8dd31dc9141698df0d0d4590c19039927d7a2f88c01c00778aa21656a8b847df8bde8df49e39e91794075700febfab44b85cad375a0aa7"),
        (HashAlgo::Blake2b384, "fc64332c0d3273e797d9adec2898619c393e66fc84fac232cc15d45c379c1fca08aec10f66fb5df89c16af1872f2c3aa"),
        (HashAlgo::Blake2b512, "ddca289eea9b8094285e47587bfc6acb67e924abbd8792ae1c76bee2c540c63ccabd52aadd7e7754f1f2fb57b99d44f4ea1202f5b8e607c2f535ca215e1a2f4f"),
    ];

    /// The catalog check values: the CRC of "123456789".
    #[test]
    fn s3_crcs_agree_with_their_catalog_check_values() {
        assert_eq!(
            hex_of(HashAlgo::Crc32, b"123456789").as_deref(),
            Some("cbf43926")
        );
        assert_eq!(
            hex_of(HashAlgo::Crc32c, b"123456789").as_deref(),
            Some("e3069283")
        );
        assert_eq!(
            hex_of(HashAlgo::Crc64nvme, b"123456789").as_deref(),
            Some("ae8b14860a799888")
        );
        for algo in [HashAlgo::Crc32, HashAlgo::Crc32c, HashAlgo::Crc64nvme] {
            assert_eq!(hex_of(algo, b"").map(|h| h.len()), Some(algo.hex_len()));
        }
    }

    /// The reference implementation's digests of the empty input (xxhsum `-H1`, `-H2`, `-H3`).
    #[test]
    fn xxhashes_agree_with_the_reference_vectors() {
        for (algo, empty) in [
            (HashAlgo::Xxh64, "ef46db3751d8e999"),
            (HashAlgo::Xxh3, "2d06800538d394c2"),
            (HashAlgo::Xxh128, "99aa06d3014798d86001c324468d497f"),
        ] {
            assert_eq!(hex_of(algo, b"").as_deref(), Some(empty), "{algo:?}");
            assert_eq!(empty.len(), algo.hex_len(), "{algo:?}");
        }
    }

    #[test]
    fn every_implemented_algorithm_agrees_with_git_annex() {
        for (algo, expected) in CALCKEY {
            assert_eq!(expected.len(), algo.hex_len(), "{algo:?}");
            assert_eq!(
                hex_of(*algo, b"hello annex\n").as_deref(),
                Some(*expected),
                "{algo:?}"
            );
        }
        for algo in HashAlgo::ALL {
            assert_eq!(
                Hasher::new(algo).is_none(),
                algo.not_checked().is_some(),
                "{algo:?}"
            );
        }
    }
}
