//! Rendezvous (highest-random-weight) hashing: which node a key goes to, and each node's share
//! of a count. Pure functions of their arguments, so every node given the same node list
//! computes the same answer without talking to the others.
//!
//! Every (key, node) pair gets a pseudo-random weight; a key's nodes in order of falling weight
//! are its preference list. Removing a node only moves the keys that node was first for (and
//! only shifts ranks below it); adding one only takes keys for which it comes first. The hash is
//! fixed here (FNV-1a over the bytes, then the SplitMix64 finaliser to spread FNV's weak high
//! bits), never a std `Hasher`, whose output may change between Rust releases: nodes of
//! different builds must agree.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

fn finalise(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The weight of `node_id` for `key`. 0xff separates the two (it never occurs in UTF-8), so
/// ("ab", "c") and ("a", "bc") differ.
pub fn weight(key: &str, node_id: &str) -> u64 {
    let h = fnv(FNV_OFFSET, key.as_bytes());
    let h = fnv(h, &[0xff]);
    finalise(fnv(h, node_id.as_bytes()))
}

/// `nodes` in `key`'s preference order: highest weight first, ties (practically never) broken
/// by id so the order is total.
pub fn rank<'a>(key: &str, nodes: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<(u64, &str)> = nodes.into_iter().map(|n| (weight(key, n), n)).collect();
    v.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    v.dedup_by(|a, b| a.1 == b.1);
    v.into_iter().map(|(_, n)| n).collect()
}

/// `me`'s share of `target` among `nodes` (which should include `me`): the node at rank `r` of
/// `n` gets `target / n`, plus one if `r < target % n`. The shares of all nodes sum to
/// `target`. A node not in the list gets 0.
pub fn share(key: &str, target: u32, nodes: &[&str], me: &str) -> u32 {
    let ranked = rank(key, nodes.iter().copied());
    let n = ranked.len() as u32;
    match ranked.iter().position(|x| *x == me) {
        Some(r) => target / n + u32::from((r as u32) < target % n),
        None => 0,
    }
}

/// The first node in `key`'s preference order among those `has_room` admits.
pub fn pick<'a>(
    key: &str,
    nodes: impl IntoIterator<Item = &'a str>,
    has_room: impl Fn(&str) -> bool,
) -> Option<&'a str> {
    rank(key, nodes).into_iter().find(|n| has_room(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn weights_are_fixed_and_separated() {
        // Pinned: a change of the hash would split a cluster of mixed builds.
        assert_eq!(weight("k", "n"), weight("k", "n"));
        assert_ne!(weight("ab", "c"), weight("a", "bc"));
        assert_ne!(weight("k", "n1"), weight("k", "n2"));
        assert_eq!(weight("", ""), finalise(fnv(FNV_OFFSET, &[0xff])));
    }

    #[test]
    fn shares_sum_to_the_target() {
        for n in 1..=7 {
            let nodes = names(n);
            let ids: Vec<&str> = nodes.iter().map(String::as_str).collect();
            for target in 0..=25u32 {
                for key in ["a/s/f/1", "a/s/g/2", "acct/svc/fn/LATEST", ""] {
                    let shares: Vec<u32> =
                        ids.iter().map(|me| share(key, target, &ids, me)).collect();
                    assert_eq!(
                        shares.iter().sum::<u32>(),
                        target,
                        "n={n} target={target} key={key}: {shares:?}"
                    );
                    let (lo, hi) = (target / n as u32, target.div_ceil(n as u32));
                    assert!(shares.iter().all(|s| *s == lo || *s == hi), "{shares:?}");
                }
            }
        }
        assert_eq!(share("k", 4, &["a", "b"], "c"), 0, "not a member");
        assert_eq!(share("k", 4, &["a"], "a"), 4);
    }

    #[test]
    fn order_of_the_list_does_not_matter() {
        let a = ["x", "y", "z", "w"];
        let b = ["w", "z", "y", "x"];
        for key in ["p1", "p2", "p3"] {
            assert_eq!(rank(key, a), rank(key, b));
            for me in a {
                assert_eq!(share(key, 7, &a, me), share(key, 7, &b, me));
            }
        }
    }

    #[test]
    fn removing_a_node_keeps_the_others_in_order() {
        let nodes = names(6);
        let ids: Vec<&str> = nodes.iter().map(String::as_str).collect();
        for i in 0..200 {
            let key = format!("acct/svc/f{i}/1");
            let full = rank(&key, ids.iter().copied());
            for gone in &ids {
                let rest: Vec<&str> = ids.iter().copied().filter(|x| x != gone).collect();
                let without = rank(&key, rest.iter().copied());
                let expected: Vec<&str> = full.iter().copied().filter(|x| x != gone).collect();
                assert_eq!(without, expected, "key {key} without {gone}");
                // Only the nodes ranked below the one that left move (up by one), so a share
                // changes only where the rank did.
                let r_gone = full.iter().position(|x| x == gone).unwrap_or(0);
                for (r, n) in full.iter().enumerate().filter(|(_, n)| *n != gone) {
                    let r2 = without.iter().position(|x| x == n).unwrap_or(usize::MAX);
                    assert_eq!(r2, if r < r_gone { r } else { r - 1 });
                }
            }
        }
    }

    #[test]
    fn keys_move_only_to_or_from_the_changed_node() {
        let nodes = names(4);
        let ids: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let with_new: Vec<&str> = ids.iter().copied().chain(["node-new"]).collect();
        let mut moved = 0;
        for i in 0..1000 {
            let key = format!("k{i}");
            let before = pick(&key, ids.iter().copied(), |_| true);
            let after = pick(&key, with_new.iter().copied(), |_| true);
            if before != after {
                assert_eq!(after, Some("node-new"));
                moved += 1;
            }
        }
        // About a fifth of the keys go to the fifth node.
        assert!((120..=280).contains(&moved), "{moved}");
    }

    #[test]
    fn keys_spread_evenly() {
        let nodes = names(3);
        let ids: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let mut count = [0usize; 3];
        for i in 0..3000 {
            let key = format!("acct/svc/fn-{i}/LATEST");
            let first = rank(&key, ids.iter().copied())[0];
            let idx = ids.iter().position(|x| *x == first).unwrap_or(0);
            count[idx] += 1;
        }
        assert!(count.iter().all(|c| (850..=1150).contains(c)), "{count:?}");
    }

    #[test]
    fn pick_spills_down_the_preference_order() {
        let ids = ["a", "b", "c", "d"];
        let key = "acct/svc/f/1";
        let order = rank(key, ids);
        assert_eq!(pick(key, ids, |_| true), Some(order[0]));
        assert_eq!(pick(key, ids, |n| n != order[0]), Some(order[1]));
        assert_eq!(pick(key, ids, |n| n == order[3]), Some(order[3]));
        assert_eq!(pick(key, ids, |_| false), None);
        assert_eq!(pick(key, [], |_| true), None);
    }
}
