//! Stable hashes of a file's relative path: which shard takes it (`--shard I/N`) and the
//! seed it is restored with. Both depend on the path and the batch's settings only, never
//! on the listing order or the machine, so shards are disjoint, together complete, and a
//! file gives the same pixels whichever batch or shard restores it.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};

/// The first 8 bytes of `sha256(domain ‖ 0 ‖ data)`, little-endian.
fn hash64(domain: &str, data: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    h.update([0u8]);
    for d in data {
        h.update(d);
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// The seed of one file: a hash of the batch seed and the file's relative path.
pub fn file_seed(batch_seed: u64, rel: &str) -> u64 {
    hash64(
        "vml-batch-seed",
        &[&batch_seed.to_le_bytes(), rel.as_bytes()],
    )
}

/// One share of the inputs: index `index` (0-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// The whole set.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether the file at `rel` belongs to this shard.
    pub fn takes(&self, rel: &str) -> bool {
        self.count <= 1 || hash64("vml-batch-shard", &[rel.as_bytes()]) % self.count == self.index
    }

    /// The journal of this shard: `journal.jsonl` for the whole set, else
    /// `journal-I-of-N.jsonl`.
    pub fn journal_name(&self) -> String {
        if self.count <= 1 {
            "journal.jsonl".into()
        } else {
            format!("journal-{}-of-{}.jsonl", self.index, self.count)
        }
    }

    /// `I/N`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.index, self.count)
    }
}

/// `--shard I/N` (0 ≤ I < N) or `--shard auto`, which reads the environment. In a Slurm
/// array with `count` (`--shard-count N`) the index is `SLURM_ARRAY_TASK_ID` itself;
/// without it, `SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN` of `SLURM_ARRAY_TASK_COUNT`,
/// which is right for a whole array only. Else `JOB_COMPLETION_INDEX` (Kubernetes Indexed
/// Jobs) with `count`.
pub fn parse(
    spec: &str,
    count: Option<u64>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Shard> {
    let usage = |m: String| Error::Usage(format!("--shard {spec}: {m}"));
    let number = |name: &str, v: &str| -> Result<u64> {
        v.trim()
            .parse::<u64>()
            .map_err(|_| usage(format!("{name} is '{v}', not a whole number ≥ 0")))
    };
    let shard = if spec == "auto" {
        if let Some(id) = env("SLURM_ARRAY_TASK_ID") {
            let id = number("SLURM_ARRAY_TASK_ID", &id)?;
            match count {
                // The task IDs are the shard indexes: a task resubmitted alone
                // (`sbatch --array=2`) sees an array of one task starting at 2, and must
                // still take share 2.
                Some(n) => Shard {
                    index: id,
                    count: n,
                },
                // A whole array: count from its first task, so `--array=1-4` works too.
                None => {
                    let min = match env("SLURM_ARRAY_TASK_MIN") {
                        Some(m) => number("SLURM_ARRAY_TASK_MIN", &m)?,
                        None => 0,
                    };
                    let n = env("SLURM_ARRAY_TASK_COUNT").ok_or_else(|| {
                        usage("SLURM_ARRAY_TASK_COUNT is not set; give --shard-count N".into())
                    })?;
                    Shard {
                        index: id.checked_sub(min).ok_or_else(|| {
                            usage(format!(
                                "SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}"
                            ))
                        })?,
                        count: number("SLURM_ARRAY_TASK_COUNT", &n)?,
                    }
                }
            }
        } else if let Some(i) = env("JOB_COMPLETION_INDEX") {
            let n = count.ok_or_else(|| {
                usage(
                    "JOB_COMPLETION_INDEX is set; give the Job's completions as --shard-count N"
                        .into(),
                )
            })?;
            Shard {
                index: number("JOB_COMPLETION_INDEX", &i)?,
                count: n,
            }
        } else {
            return Err(usage(
                "neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set".into(),
            ));
        }
    } else {
        if count.is_some() {
            return Err(usage("--shard-count goes with --shard auto only".into()));
        }
        let (i, n) = spec
            .split_once('/')
            .ok_or_else(|| usage("expected I/N (0 ≤ I < N) or auto".into()))?;
        Shard {
            index: number("I", i)?,
            count: number("N", n)?,
        }
    };
    if shard.count == 0 || shard.index >= shard.count {
        return Err(usage(format!(
            "shard index {} is not below the count {} (indexes start at 0)",
            shard.index, shard.count
        )));
    }
    Ok(shard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn shards_are_disjoint_and_complete() {
        let names: Vec<String> = (0..200).map(|i| format!("dir/{i}.png")).collect();
        for n in [1u64, 2, 3, 7] {
            for name in &names {
                let owners = (0..n)
                    .filter(|&i| Shard { index: i, count: n }.takes(name))
                    .count();
                assert_eq!(owners, 1, "{name} in {n} shards");
            }
        }
        // Not all in one shard.
        let first = names
            .iter()
            .filter(|r| Shard { index: 0, count: 4 }.takes(r))
            .count();
        assert!((20..80).contains(&first), "{first}");
    }

    #[test]
    fn specs_parse() {
        let none = env(&[]);
        assert_eq!(
            parse("2/4", None, &none).unwrap(),
            Shard { index: 2, count: 4 }
        );
        assert!(parse("4/4", None, &none).is_err());
        assert!(parse("1/0", None, &none).is_err());
        assert!(parse("x", None, &none).is_err());
        assert!(parse("auto", None, &none).is_err());
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(
            parse("auto", None, &slurm).unwrap(),
            Shard { index: 2, count: 4 }
        );
        // With --shard-count the task ID is the index: a task resubmitted alone keeps its
        // share (Slurm then says the array is one task long, starting at that ID).
        let resubmitted = env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_MIN", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
        ]);
        assert_eq!(
            parse("auto", Some(4), &resubmitted).unwrap(),
            Shard { index: 2, count: 4 }
        );
        assert!(parse("auto", Some(2), &resubmitted).is_err());
        let k8s = env(&[("JOB_COMPLETION_INDEX", "1")]);
        assert!(parse("auto", None, &k8s).is_err());
        assert_eq!(
            parse("auto", Some(3), &k8s).unwrap(),
            Shard { index: 1, count: 3 }
        );
    }

    #[test]
    fn seeds_depend_on_seed_and_path() {
        assert_eq!(file_seed(0, "a.png"), file_seed(0, "a.png"));
        assert_ne!(file_seed(0, "a.png"), file_seed(0, "b.png"));
        assert_ne!(file_seed(0, "a.png"), file_seed(1, "a.png"));
    }
}
