//! Awaits wherever an `async fn` may have them: inside expressions, in
//! conditions, guards, let chains, labeled blocks and macro arguments.
use durable_runtime::prelude::*;

#[activity]
async fn price(item: String) -> Result<u64, ActivityError> {
    Ok(item.len() as u64)
}

#[activity]
async fn page(cursor: u64) -> Result<Option<u64>, ActivityError> {
    Ok((cursor < 3).then_some(cursor + 1))
}

#[workflow]
async fn anywhere(a: String, b: String) -> Result<String, WorkflowError> {
    let mut cursor = 0;
    while let Some(next) = page(cursor).await? {
        cursor = next;
    }
    while price(a.clone()).await? > cursor {
        cursor += 1;
    }
    for n in [page(cursor).await?, page(cursor + 1).await?] {
        cursor += n.unwrap_or(0);
    }
    let total = price(a.clone()).await? + price(b.clone()).await?;
    if price(a.clone()).await? > 10 && price(a.clone()).await? < 100 {
        cursor += 1;
    }
    let s = format!("{}-{}", a, price(a.clone()).await?);
    let biggest = u64::max(total, price(price(b.clone()).await?.to_string()).await?);
    let kind = match cursor {
        n if price(b.clone()).await? > n => "long".to_string(),
        _ => "short".to_string(),
    };
    if let Some(n) = page(cursor).await?
        && n > 1
    {
        cursor = n;
    }
    let checked = 'check: {
        if price(b.clone()).await? == 0 {
            break 'check false;
        }
        true
    };
    println!("{s} {biggest} {kind} {checked} {}", price(b).await?);
    Ok(format!("{cursor}/{total}"))
}

fn main() {}
