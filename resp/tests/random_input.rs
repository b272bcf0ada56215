//! Randomised tests of request decoding: garbage and mutated frames never panic and never
//! loop, and a valid pipeline decodes the same however the bytes are split into reads.

use bytes::{Bytes, BytesMut};
use rockraft_resp::{decode_request, encode_request as encode, RequestLimits};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn random_command(rng: &mut Rng) -> Vec<Vec<u8>> {
    (0..1 + rng.below(5))
        .map(|_| (0..rng.below(40)).map(|_| rng.next() as u8).collect())
        .collect()
}

/// Feeds `input` in chunks and decodes until the decoder waits, errs, or the input runs out.
/// Returns the commands decoded and whether it stopped on an error.
fn drive(input: &[u8], rng: &mut Rng, limits: &RequestLimits) -> (Vec<Vec<Bytes>>, bool) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 100_000, "decoder does not make progress");
        let before = buf.len();
        match decode_request(&mut buf, limits) {
            Ok(Some(argv)) => {
                assert!(buf.len() < before, "a decoded request must consume bytes");
                out.push(argv);
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "waiting for more must not consume");
                if pos == input.len() {
                    return (out, false);
                }
                let n = (1 + rng.below(64)).min(input.len() - pos);
                buf.extend_from_slice(&input[pos..pos + n]);
                pos += n;
            }
            Err(_) => return (out, true),
        }
    }
}

#[test]
fn any_split_of_a_pipeline_decodes_the_same() {
    let mut rng = Rng(0x9E3779B97F4A7C15);
    let limits = RequestLimits::default();
    for _ in 0..500 {
        let commands: Vec<Vec<Vec<u8>>> = (0..1 + rng.below(20))
            .map(|_| random_command(&mut rng))
            .collect();
        let wire: Vec<u8> = commands.iter().flat_map(|c| encode(c)).collect();
        let (decoded, failed) = drive(&wire, &mut rng, &limits);
        assert!(!failed);
        let decoded: Vec<Vec<Vec<u8>>> = decoded
            .into_iter()
            .map(|argv| argv.into_iter().map(|b| b.to_vec()).collect())
            .collect();
        assert_eq!(decoded, commands);
    }
}

#[test]
fn garbage_and_mutations_never_panic_or_hang() {
    let mut rng = Rng(0xD1B54A32D192ED03);
    let limits = RequestLimits {
        max_bulk_len: 1 << 20,
    };
    let alphabet = b"*$\r\n0123456789-+:abc \"'\\x";
    for round in 0..5000 {
        let mut input: Vec<u8> = if round % 2 == 0 {
            (0..rng.below(200))
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect()
        } else {
            let cmd = random_command(&mut rng);
            encode(&cmd)
        };
        // Flip, insert or delete a few bytes.
        for _ in 0..rng.below(4) {
            if input.is_empty() {
                break;
            }
            let at = rng.below(input.len());
            match rng.below(3) {
                0 => input[at] = alphabet[rng.below(alphabet.len())],
                1 => input.insert(at, alphabet[rng.below(alphabet.len())]),
                _ => {
                    input.remove(at);
                }
            }
        }
        let _ = drive(&input, &mut rng, &limits);
    }
}
