//! Just enough cryptography to write a PDF that poppler, lopdf and qpdf accept as genuinely
//! encrypted: MD5, RC4 and the PDF standard security handler, revision 2 (40-bit RC4).
//! Hand-written because the testkit takes no crypto dependency; MD5 and RC4 are broken ciphers and
//! are used here only because the PDF 1.1 format requires them.

/// The 32-byte padding string of the standard security handler (ISO 32000-1, 7.6.3.3).
const PAD: [u8; 32] = [
    0x28, 0xBF, 0x4E, 0x5E, 0x4E, 0x75, 0x8A, 0x41, 0x64, 0x00, 0x4E, 0x56, 0xFF, 0xFA, 0x01, 0x08,
    0x2E, 0x2E, 0x00, 0xB6, 0xD0, 0x68, 0x3E, 0x80, 0x2F, 0x0C, 0xA9, 0xFE, 0x64, 0x53, 0x69, 0x7A,
];

/// Key length of revision 2, in bytes (40 bits).
const KEY_LEN: usize = 5;

pub(crate) fn md5(data: &[u8]) -> [u8; 16] {
    const SHIFTS: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
    // K[i] = floor(|sin(i + 1)| * 2^32) (RFC 1321); exact in f64, checked by the test vectors.
    let k: Vec<u32> = (0..64)
        .map(|i| ((f64::from(i + 1)).sin().abs() * 4_294_967_296.0) as u32)
        .collect();

    let mut message = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_le_bytes());

    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    for block in message.chunks_exact(64) {
        let words: Vec<u32> = block
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(words[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(SHIFTS[(i / 16) * 4 + i % 4]));
        }
        state[0] = state[0].wrapping_add(a);
        state[1] = state[1].wrapping_add(b);
        state[2] = state[2].wrapping_add(c);
        state[3] = state[3].wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    out
}

pub(crate) fn rc4(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut s: [u8; 256] = std::array::from_fn(|i| i as u8);
    let mut j: u8 = 0;
    for i in 0..256 {
        j = j.wrapping_add(s[i]).wrapping_add(key[i % key.len()]);
        s.swap(i, usize::from(j));
    }
    let (mut i, mut j) = (0u8, 0u8);
    data.iter()
        .map(|byte| {
            i = i.wrapping_add(1);
            j = j.wrapping_add(s[usize::from(i)]);
            s.swap(usize::from(i), usize::from(j));
            byte ^ s[usize::from(s[usize::from(i)].wrapping_add(s[usize::from(j)]))]
        })
        .collect()
}

fn padded(password: &[u8]) -> [u8; 32] {
    let mut out = PAD;
    let n = password.len().min(32);
    out[..n].copy_from_slice(&password[..n]);
    out[n..].copy_from_slice(&PAD[..32 - n]);
    out
}

/// The values of a standard security handler, revision 2, plus the file key they imply.
pub(crate) struct StandardSecurity {
    pub owner_entry: [u8; 32],
    pub user_entry: [u8; 32],
    pub permissions: i32,
    file_key: [u8; KEY_LEN],
}

impl StandardSecurity {
    /// Algorithms 3 (O), 2 (file key) and 4 (U) of ISO 32000-1, 7.6.3.
    pub fn new(user_password: &[u8], owner_password: &[u8], permissions: i32, id: &[u8]) -> Self {
        let owner_key = md5(&padded(owner_password));
        let owner_entry: [u8; 32] = rc4(&owner_key[..KEY_LEN], &padded(user_password))
            .try_into()
            .expect("rc4 preserves length");

        let mut input = padded(user_password).to_vec();
        input.extend_from_slice(&owner_entry);
        input.extend_from_slice(&permissions.to_le_bytes());
        input.extend_from_slice(id);
        let digest = md5(&input);
        let mut file_key = [0u8; KEY_LEN];
        file_key.copy_from_slice(&digest[..KEY_LEN]);

        let user_entry: [u8; 32] = rc4(&file_key, &PAD)
            .try_into()
            .expect("rc4 preserves length");
        Self {
            owner_entry,
            user_entry,
            permissions,
            file_key,
        }
    }

    /// Encrypts a string or stream of object `number` (generation 0): Algorithm 1.
    pub fn encrypt(&self, number: u32, data: &[u8]) -> Vec<u8> {
        let mut input = self.file_key.to_vec();
        input.extend_from_slice(&number.to_le_bytes()[..3]);
        input.extend_from_slice(&[0, 0]);
        let digest = md5(&input);
        rc4(&digest[..KEY_LEN + 5], data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn md5_matches_the_rfc_1321_test_vectors() {
        assert_eq!(hex(&md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(&md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex(&md5(
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
            )),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
    }

    #[test]
    fn rc4_matches_the_classic_test_vector() {
        assert_eq!(hex(&rc4(b"Key", b"Plaintext")), "bbf316e8d940af0ad3");
    }

    #[test]
    fn rc4_decrypts_what_it_encrypted() {
        let security = StandardSecurity::new(b"user", b"owner", -44, &[1; 16]);
        let secret = security.encrypt(7, b"BT (hello) Tj ET");
        assert_ne!(secret, b"BT (hello) Tj ET");
        assert_eq!(security.encrypt(7, &secret), b"BT (hello) Tj ET");
    }
}
