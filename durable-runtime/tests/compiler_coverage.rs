//! Each language construct the workflow compiler supports, checked by
//! running the compiled state machine (state encoded, dropped and decoded
//! between every step) against the original body run as a plain async fn:
//! same output, same activity calls in the same order.

use std::cell::RefCell;
use std::collections::VecDeque;

use durable_runtime::prelude::*;
use durable_runtime::testing::run_stepwise;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

thread_local! {
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    static FAILURES: RefCell<VecDeque<bool>> = const { RefCell::new(VecDeque::new()) };
}

fn log(line: String) {
    LOG.with(|l| l.borrow_mut().push(line));
}

fn take_log() -> Vec<String> {
    LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

fn next_fails() -> bool {
    FAILURES.with(|f| f.borrow_mut().pop_front().unwrap_or(false))
}

#[activity(max_attempts = 1)]
async fn add(a: u64, b: u64) -> Result<u64, ActivityError> {
    log(format!("add {a} {b}"));
    Ok(a + b)
}

#[activity(max_attempts = 1)]
async fn fetch(key: String) -> Result<String, ActivityError> {
    log(format!("fetch {key}"));
    if next_fails() {
        return Err(ActivityError::terminal(format!("cannot fetch {key}")));
    }
    Ok(format!("v-{key}"))
}

#[activity(max_attempts = 1)]
async fn record(msg: String) -> Result<(), ActivityError> {
    log(format!("record {msg}"));
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Point {
    pub x: u64,
    pub y: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Shape {
    Small(u64),
    Big { size: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Choice {
    A(u64),
    B { x: u64, y: u64 },
    C,
}

fn scale(p: &Point, by: u64) -> Point {
    Point {
        x: p.x * by,
        y: p.y * by,
    }
}

#[workflow]
async fn let_patterns_and_shadowing(x: u64) -> Result<u64, WorkflowError> {
    let (a, b) = (x, x + 1);
    let s = add(a, b).await?;
    let s = s * 2;
    let Point { x: left, y: right } = Point { x: s, y: a };
    let t = add(left, right).await?;
    let x = t + 1;
    Ok(x)
}

#[workflow]
async fn branches(n: u64) -> Result<String, WorkflowError> {
    if n == 0 {
        return Ok("zero".to_string());
    }
    let label = if n % 15 == 0 {
        fetch("fizzbuzz".into()).await?
    } else if n % 3 == 0 {
        let v = fetch("fizz".into()).await?;
        v + "!"
    } else {
        format!("{n}")
    };
    let mut extra = String::new();
    if n > 10 {
        extra = fetch(label.clone()).await?;
    }
    Ok(format!("{label}/{extra}"))
}

#[workflow]
async fn matching(input: Choice) -> Result<u64, WorkflowError> {
    let v = match input {
        Choice::A(n) if n > 100 => add(n, 1).await?,
        Choice::A(n) => {
            let r = add(n, 2).await?;
            r * 10
        }
        Choice::B { x, y } => add(x, y).await? + x,
        Choice::C => 7,
    };
    match v % 3 {
        0 => {
            record("multiple of three".into()).await?;
        }
        _ => {}
    }
    Ok(v)
}

#[workflow]
async fn loops(limit: u64) -> Result<u64, WorkflowError> {
    let mut total = 0;
    let mut i = 0;
    let found = loop {
        i += 1;
        let s = add(total, i).await?;
        total = s;
        if total > limit {
            break i;
        }
    };
    let mut queue = vec![1u64, 2, 3];
    while let Some(q) = queue.pop() {
        if q == 2 {
            continue;
        }
        total = add(total, q).await?;
    }
    let mut j = 0;
    while j < 3 {
        j += 1;
        total = add(total, j).await?;
    }
    'outer: for a in 0..3u64 {
        for b in 0..3u64 {
            if b > a {
                continue 'outer;
            }
            if a == 2 && b == 1 {
                break 'outer;
            }
            total = add(total, a * 10 + b).await?;
        }
    }
    Ok(total + found)
}

#[workflow]
async fn for_over_vec(items: Vec<String>) -> Result<Vec<String>, WorkflowError> {
    let mut out = Vec::new();
    for (idx, item) in items.into_iter().enumerate() {
        if item.is_empty() {
            continue;
        }
        let v = fetch(item).await?;
        out.push(format!("{idx}:{v}"));
    }
    {
        let nested = out.len() as u64;
        let n = add(nested, 1).await?;
        out.push(n.to_string());
    }
    Ok(out)
}

#[workflow]
async fn errors(key: String) -> Result<String, WorkflowError> {
    let first = fetch(key.clone()).await;
    let text = match first {
        Ok(v) => v,
        Err(e) => format!("recovered from {}", e.message()),
    };
    let n: u64 = text
        .len()
        .to_string()
        .parse::<u64>()
        .map_err(|e| WorkflowError(e.to_string()))?;
    let v = fetch(key).await?;
    Ok(format!("{text}/{n}/{v}"))
}

#[workflow]
async fn helpers_and_literals(p: Point) -> Result<(Point, Vec<u64>, Shape), WorkflowError> {
    let scaled = scale(&p, 2);
    let s = add(scaled.x, scaled.y).await?;
    let shape = if s > 10 {
        Shape::Big { size: s }
    } else {
        Shape::Small(s)
    };
    let extra = add(1, 2).await?;
    let v = vec![s, extra];
    Ok((Point { x: s, y: extra }, v, shape))
}

#[workflow]
async fn no_awaits(x: u64) -> u64 {
    x + 1
}

#[workflow]
async fn unit_result(msg: String) {
    record(msg).await.ok();
}

#[workflow]
async fn two_params(a: u64, b: String) -> Result<String, WorkflowError> {
    let n = add(a, 1).await?;
    Ok(format!("{b}{n}"))
}

#[activity(max_attempts = 1)]
async fn page(cursor: u64) -> Result<Option<u64>, ActivityError> {
    log(format!("page {cursor}"));
    Ok((cursor < 5).then_some(cursor + 1))
}

fn weigh(items: &[u64], extra: u64) -> u64 {
    items.iter().sum::<u64>() + extra
}

#[workflow]
async fn awaits_inside_expressions(a: u64, b: u64) -> Result<String, WorkflowError> {
    // two awaits in one expression, each `?` before the next await
    let total = add(a, 1).await? + add(b, 2).await?;
    // `&&` and `||` keep short-circuiting: the second call runs only when needed
    let mut notes = Vec::new();
    if add(a, 0).await? > 10 && add(b, 0).await? < 100 {
        notes.push("both".to_string());
    }
    if add(a, 0).await? < 10 || add(b, 100).await? > 5 {
        notes.push("either".to_string());
    }
    // an await in a macro argument
    let s = format!("{}-{}", a, add(a, total).await?);
    notes.push(s);
    // an await as a call argument, and an await inside an awaited command
    let m = u64::max(total, add(b, b).await?);
    let n = add(add(a, b).await?, m).await?;
    notes.push(fetch(format!("k{n}")).await?.to_uppercase());
    let mut list = vec![add(1, 1).await?, add(2, 2).await?];
    list.push(add(3, 3).await?);
    let p = Point {
        x: add(a, 5).await?,
        y: add(b, 6).await?,
    };
    // an operand read before a later operand changes it keeps its old value
    let mut c = a;
    let ordered = c + {
        c += 100;
        add(c, 0).await?
    };
    // a receiver an argument reads stays in place: the push lands in `list`
    list.push(add(list.len() as u64, 10).await?);
    // a borrowed place stays borrowed, not moved into a hidden local
    let weighed = weigh(&list, add(list.len() as u64, 0).await?);
    Ok(format!(
        "{total}/{m}/{n}/{list:?}/{notes:?}/{}/{}/{ordered}/{c}/{weighed}",
        p.x, p.y
    ))
}

#[workflow]
async fn awaits_in_conditions(start: u64) -> Result<u64, WorkflowError> {
    // an await in a `while let` condition: paging until the last page
    let mut cursor = start;
    let mut pages = 0;
    while let Some(next) = page(cursor).await? {
        cursor = next;
        pages += 1;
    }
    let mut n = 0;
    while add(n, 0).await? < 3 {
        n += 1;
    }
    // a let chain with awaits in two links
    if let Some(x) = page(start).await?
        && x > 2
        && let Some(mut y) = page(x).await?
    {
        y += 1;
        n += x + y;
    } else {
        n += 1000;
    }
    // a labeled block
    let v = 'b: {
        let a = add(n, 1).await?;
        if a > 3 {
            break 'b a * 2;
        }
        a
    };
    // awaits in statement macros
    println!("pages {}", add(pages, 0).await?);
    assert!(add(v, 0).await? == v, "the same value");
    Ok(cursor + pages + n + v)
}

#[workflow]
async fn awaits_in_guards(input: Choice) -> Result<u64, WorkflowError> {
    // a guard runs only when its pattern matches and the arms before it failed
    let v = match input {
        Choice::A(n) if add(n, 0).await? > 10 => add(n, 1).await?,
        Choice::A(n) => n,
        Choice::B { x, .. } if x > 5 => x,
        Choice::B { x, y } if add(x, y).await? % 2 == 0 => y,
        other => match other {
            Choice::C => 7,
            _ => 8,
        },
    };
    Ok(v)
}

#[activity(max_attempts = 1)]
async fn list_of(n: u64) -> Result<Vec<u64>, ActivityError> {
    log(format!("list_of {n}"));
    Ok((0..n).collect())
}

#[workflow]
async fn awaits_in_for_heads(n: u64) -> Result<u64, WorkflowError> {
    let mut total = 0;
    // the iterable awaited: evaluated once, before the first item
    for x in list_of(n).await? {
        total += x;
    }
    // an awaited iterable and awaits in the body
    for x in list_of(n + 1).await? {
        total += add(x, total).await?;
    }
    // two awaits in one iterable, in order; a labeled loop over an awaited
    // iterable
    for p in [page(n).await?, page(n + 2).await?].into_iter().flatten() {
        total += p;
    }
    'outer: for x in list_of(3).await? {
        for y in list_of(x + 1).await? {
            if y == 2 {
                continue 'outer;
            }
            total += add(x, y).await?;
        }
    }
    Ok(total)
}

/// Two activities per pass of a loop, in a helper.
#[helper]
async fn sum_pairs(keys: Vec<String>) -> Result<u64, WorkflowError> {
    let mut total = 0;
    for key in keys {
        let value = fetch(key.clone()).await?;
        total = add(total, value.len() as u64).await?;
    }
    Ok(total)
}

/// A helper calling a helper from a loop, skipping it for an empty group.
#[helper]
async fn group_sums(groups: Vec<Vec<String>>) -> Result<Vec<u64>, WorkflowError> {
    let mut out = Vec::new();
    for group in groups {
        if group.is_empty() {
            out.push(0);
            continue;
        }
        out.push(sum_pairs(group).await?);
    }
    Ok(out)
}

/// A helper that may return without awaiting anything.
#[helper]
async fn maybe_record(msg: String) -> Result<bool, WorkflowError> {
    if msg.is_empty() {
        return Ok(false);
    }
    record(msg).await?;
    Ok(true)
}

/// Helpers awaited from a workflow: nested two deep, in an expression with
/// an activity, in a condition, and one that returns at once.
#[workflow]
async fn nested_helpers(
    groups: Vec<Vec<String>>,
) -> Result<(Vec<u64>, u64, bool, bool), WorkflowError> {
    let sums = group_sums(groups.clone()).await?;
    let again = sum_pairs(groups.concat()).await? + add(1, 1).await?;
    let skipped = maybe_record(String::new()).await?;
    let recorded = if maybe_record(format!("{}", sums.len())).await? {
        maybe_record(String::new()).await? || again > 0
    } else {
        false
    };
    Ok((sums, again, skipped, recorded))
}

/// Runs both ways and checks they agree; `failures` scripts which `fetch`
/// calls fail, identically for both runs.
async fn both<W: durable_runtime::Workflow>(
    inline: impl std::future::Future<Output = W::Output>,
    call: durable_runtime::WorkflowCall<W>,
    failures: &[bool],
) -> W::Output
where
    W::Output: PartialEq + std::fmt::Debug,
{
    take_log();
    FAILURES.with(|f| *f.borrow_mut() = failures.iter().copied().collect());
    let expected = inline.await;
    let expected_log = take_log();
    FAILURES.with(|f| *f.borrow_mut() = failures.iter().copied().collect());
    let run = run_stepwise(call).await.expect("stepwise run");
    let log = take_log();
    assert_eq!(
        run.output, expected,
        "output differs from the plain async fn"
    );
    assert_eq!(
        log, expected_log,
        "activity calls differ from the plain async fn"
    );
    assert_eq!(
        run.requests.len(),
        log.len(),
        "one request per activity call"
    );
    run.output
}

#[tokio::test]
async fn let_patterns_and_shadowing_match_the_async_fn() {
    let out = both(
        let_patterns_and_shadowing::run_inline(3),
        let_patterns_and_shadowing(3),
        &[],
    )
    .await;
    assert_eq!(out.unwrap(), 18);
}

#[tokio::test]
async fn if_else_chains_and_early_return_match_the_async_fn() {
    for n in [0, 1, 3, 5, 11, 12, 15, 30] {
        both(branches::run_inline(n), branches(n), &[])
            .await
            .unwrap();
    }
    assert_eq!(
        both(branches::run_inline(12), branches(12), &[])
            .await
            .unwrap(),
        "v-fizz!/v-v-fizz!"
    );
}

#[tokio::test]
async fn match_with_guards_and_bindings_matches_the_async_fn() {
    for c in [
        Choice::A(500),
        Choice::A(1),
        Choice::B { x: 2, y: 4 },
        Choice::C,
    ] {
        both(matching::run_inline(c.clone()), matching(c), &[])
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn loops_with_labels_and_break_values_match_the_async_fn() {
    for limit in [0, 5, 40] {
        both(loops::run_inline(limit), loops(limit), &[])
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn for_over_a_vec_and_nested_blocks_match_the_async_fn() {
    let items = vec!["a".to_string(), String::new(), "c".to_string()];
    let out = both(
        for_over_vec::run_inline(items.clone()),
        for_over_vec(items),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(out, vec!["0:v-a", "2:v-c", "3"]);
}

#[tokio::test]
async fn question_mark_and_matched_errors_match_the_async_fn() {
    for script in [&[][..], &[true], &[false, true], &[true, true]] {
        both(errors::run_inline("k".into()), errors("k".into()), script)
            .await
            .ok();
    }
    let out = both(
        errors::run_inline("k".into()),
        errors("k".into()),
        &[true, true],
    )
    .await;
    assert_eq!(out, Err(WorkflowError("error: cannot fetch k".into())));
}

#[tokio::test]
async fn helpers_and_literals_match_the_async_fn() {
    let p = Point { x: 2, y: 3 };
    let out = both(
        helpers_and_literals::run_inline(p.clone()),
        helpers_and_literals(p),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(out, (Point { x: 10, y: 3 }, vec![10, 3], Shape::Small(10)));
}

#[tokio::test]
async fn degenerate_shapes_work() {
    assert_eq!(both(no_awaits::run_inline(1), no_awaits(1), &[]).await, 2);
    both(
        unit_result::run_inline("x".into()),
        unit_result("x".into()),
        &[],
    )
    .await;
    assert_eq!(
        both(
            two_params::run_inline(1, "n".into()),
            two_params(1, "n".into()),
            &[]
        )
        .await
        .unwrap(),
        "n2"
    );
}

#[tokio::test]
async fn awaits_inside_expressions_match_the_async_fn() {
    for (a, b) in [(0, 0), (3, 50), (20, 7), (20, 500)] {
        both(
            awaits_inside_expressions::run_inline(a, b),
            awaits_inside_expressions(a, b),
            &[],
        )
        .await
        .unwrap();
    }
    assert_eq!(
        both(
            awaits_inside_expressions::run_inline(20, 7),
            awaits_inside_expressions(20, 7),
            &[]
        )
        .await
        .unwrap(),
        "30/30/57/[2, 4, 6, 13]/[\"both\", \"either\", \"20-50\", \"V-K57\"]/25/13/140/120/29"
    );
}

#[tokio::test]
async fn awaits_in_conditions_match_the_async_fn() {
    for start in [0, 2, 3, 4, 5, 9] {
        both(
            awaits_in_conditions::run_inline(start),
            awaits_in_conditions(start),
            &[],
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn awaits_in_for_loop_iterables_match_the_async_fn() {
    for n in [0, 1, 4, 7] {
        both(
            awaits_in_for_heads::run_inline(n),
            awaits_in_for_heads(n),
            &[],
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn awaits_in_match_guards_match_the_async_fn() {
    let mut outs = Vec::new();
    for c in [
        Choice::A(500),
        Choice::A(1),
        Choice::B { x: 6, y: 1 },
        Choice::B { x: 2, y: 4 },
        Choice::B { x: 2, y: 3 },
        Choice::C,
    ] {
        outs.push(
            both(
                awaits_in_guards::run_inline(c.clone()),
                awaits_in_guards(c),
                &[],
            )
            .await
            .unwrap(),
        );
    }
    assert_eq!(outs, [501, 1, 6, 4, 8, 7]);
}

#[tokio::test]
async fn helpers_nested_two_deep_match_the_async_fn() {
    let groups = |v: &[&[&str]]| -> Vec<Vec<String>> {
        v.iter()
            .map(|g| g.iter().map(|s| (*s).to_owned()).collect())
            .collect()
    };
    let out = both(
        nested_helpers::run_inline(groups(&[&["a", "bb"], &[], &["ccc"]])),
        nested_helpers(groups(&[&["a", "bb"], &[], &["ccc"]])),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(out, (vec![7, 0, 5], 14, false, true));
    // no groups: every helper but one returns at once
    let out = both(
        nested_helpers::run_inline(Vec::new()),
        nested_helpers(Vec::new()),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(out, (vec![], 2, false, true));
    // a failure deep in a nested helper ends the workflow through each `?`
    let err = both(
        nested_helpers::run_inline(groups(&[&["a", "bb"]])),
        nested_helpers(groups(&[&["a", "bb"]])),
        &[false, true],
    )
    .await
    .unwrap_err();
    assert!(err.0.contains("cannot fetch bb"), "{err}");
}

#[test]
fn variant_names_are_stable_and_fingerprints_distinct() {
    use durable_runtime::Workflow;
    let names: Vec<_> = loops::VARIANTS.iter().map(|v| v.name).collect();
    assert_eq!(names[0], "Start");
    assert!(
        names.contains(&"Add") && names.contains(&"Add2"),
        "{names:?}"
    );
    let fps: std::collections::HashSet<_> = loops::VARIANTS.iter().map(|v| v.fingerprint).collect();
    assert_eq!(
        fps.len(),
        loops::VARIANTS.len(),
        "each variant has its own fingerprint"
    );
    assert_ne!(loops::FINGERPRINT, branches::FINGERPRINT);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn stepwise_agrees_with_async_fn_under_random_failures(n in 0u64..40, failures in proptest::collection::vec(any::<bool>(), 0..4)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            both(branches::run_inline(n), branches(n), &failures).await.ok();
            both(errors::run_inline(format!("k{n}")), errors(format!("k{n}")), &failures).await.ok();
            let items: Vec<String> = (0..n % 5).map(|i| format!("i{i}")).collect();
            both(for_over_vec::run_inline(items.clone()), for_over_vec(items.clone()), &failures).await.ok();
            let groups: Vec<Vec<String>> = items.chunks(2).map(<[String]>::to_vec).collect();
            both(nested_helpers::run_inline(groups.clone()), nested_helpers(groups), &failures).await.ok();
        });
    }
}
