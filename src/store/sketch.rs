//! HyperLogLog sketches: the number of distinct things (users of an issue, users and sessions
//! of a release) in a few hundred bytes, exact for small numbers and within a few percent for
//! large ones, mergeable. Registers are plain bytes so that the rows holding them stay
//! MessagePack that older and newer binaries read.

/// A 64-bit hash of an identity, the same in every process and on every machine (FNV-1a,
/// finished with splitmix64 so that nearby inputs spread over the registers).
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Adds a hash to a sketch of `2^bits` registers (allocated on first use).
pub fn add(registers: &mut Vec<u8>, bits: u32, hash: u64) {
    let m = 1usize << bits;
    if registers.len() != m {
        registers.clear();
        registers.resize(m, 0);
    }
    let index = (hash >> (64 - bits)) as usize;
    let rest = (hash << bits) | (1 << (bits - 1));
    let rank = rest.leading_zeros() as u8 + 1;
    registers[index] = registers[index].max(rank);
}

/// Takes in another sketch of the same size.
pub fn merge(registers: &mut Vec<u8>, other: &[u8]) {
    if other.is_empty() {
        return;
    }
    if registers.len() != other.len() {
        *registers = other.to_vec();
        return;
    }
    for (mine, theirs) in registers.iter_mut().zip(other) {
        *mine = (*mine).max(*theirs);
    }
}

/// The estimated number of distinct hashes added (0 for an unused sketch).
pub fn count(registers: &[u8]) -> u64 {
    if registers.is_empty() {
        return 0;
    }
    let m = registers.len() as f64;
    let sum: f64 = registers.iter().map(|r| 2f64.powi(-i32::from(*r))).sum();
    let raw = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
    let zeros = registers.iter().filter(|r| **r == 0).count();
    let estimate = if raw <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln()
    } else {
        raw
    };
    estimate.round() as u64
}
