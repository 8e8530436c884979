//! A trip booked as a saga: the flight, the hotel and the car are three
//! activities; every booking that succeeds records its cancellation. The car
//! fails with a terminal error (no retry can fix "sold out"), so the saga
//! compensates what was booked, last first: the hotel, then the flight.
//!
//! ```text
//! cargo run --example saga_trip_booking
//! ```
//!
//! The compensations are durable steps like any other: each finished one is
//! checkpointed, so a crash in the middle of compensating resumes with the
//! next one and never cancels the same booking twice. Without `--db DIR` it
//! uses a temporary directory.

use std::path::PathBuf;

use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Trip {
    trip_id: String,
    traveller: String,
    from: String,
    to: String,
    nights: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Itinerary {
    flight: String,
    hotel: String,
    car: String,
}

fn attempt() -> u32 {
    ActivityContext::current().map_or(1, |c| c.attempt)
}

#[activity(max_attempts = 3, initial_interval_ms = 10)]
async fn book_flight(trip: Trip) -> Result<String, ActivityError> {
    let booking = format!("FL-{}-{}", trip.from, trip.to);
    println!("  book flight {} -> {}: {booking}", trip.from, trip.to);
    Ok(booking)
}

#[activity(max_attempts = 3, initial_interval_ms = 10)]
async fn book_hotel(trip: Trip) -> Result<String, ActivityError> {
    let booking = format!("HT-{}-{}n", trip.to, trip.nights);
    println!(
        "  book hotel in {} for {} nights: {booking}",
        trip.to, trip.nights
    );
    Ok(booking)
}

#[activity(max_attempts = 3, initial_interval_ms = 10)]
async fn book_car(trip: Trip) -> Result<String, ActivityError> {
    println!(
        "  book car in {} (attempt {}): sold out",
        trip.to,
        attempt()
    );
    // terminal: the retry policy allows 3 attempts, but this one is final
    Err(
        ActivityError::terminal(format!("no rental cars left in {}", trip.to))
            .with_kind("sold_out"),
    )
}

#[activity(max_attempts = 10, initial_interval_ms = 10)]
async fn cancel_hotel(booking: String) -> Result<(), ActivityError> {
    println!("  compensate: cancel hotel {booking}");
    Ok(())
}

#[activity(max_attempts = 10, initial_interval_ms = 10)]
async fn cancel_flight(booking: String) -> Result<(), ActivityError> {
    println!("  compensate: cancel flight {booking}");
    Ok(())
}

#[workflow]
async fn book_trip(trip: Trip) -> Result<Itinerary, WorkflowError> {
    let mut saga = Saga::new();
    // nothing is booked yet: a failure here needs no compensation
    let flight = book_flight(trip.clone()).await?;
    saga.add(cancel_flight(flight.clone()));
    let hotel: String = match book_hotel(trip.clone()).await {
        Ok(hotel) => hotel,
        Err(e) => {
            saga.compensate().await;
            return Err(WorkflowError(format!("{e}; flight cancelled")));
        }
    };
    saga.add(cancel_hotel(hotel.clone()));
    let car: String = match book_car(trip).await {
        Ok(car) => car,
        Err(e) => {
            // runs cancel_hotel, then cancel_flight; None = compensated fine
            let undone = saga.compensate().await;
            let failed = undone.iter().filter(|u| u.is_some()).count();
            return Err(WorkflowError(format!(
                "{e}; compensated {} bookings ({failed} compensations failed)",
                undone.len()
            )));
        }
    };
    Ok(Itinerary { flight, hotel, car })
}

fn parse_args() -> Result<Option<PathBuf>, String> {
    let mut db = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--db" => db = Some(PathBuf::from(it.next().ok_or("--db needs a value")?)),
            other => return Err(format!("unknown argument {other}; use --db DIR")),
        }
    }
    Ok(db)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = parse_args()?;
    let kept = db.is_some();
    let temp;
    let dir = match db {
        Some(dir) => dir,
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir)?;
    println!(
        "A trip booked as a saga: flight, hotel and car; the car is sold out, so the hotel and then the flight are cancelled, each once."
    );
    println!(
        "  inspect its store: durable --db {} list, durable --db {} history trip-42{}",
        dir.join("store").display(),
        dir.join("store").display(),
        if kept {
            ""
        } else {
            " (a temporary directory: run with --db DIR to keep it)"
        }
    );
    let runtime = Runtime::builder()
        .workflow::<book_trip>()
        .open(dir.join("store"))
        .await?;

    let trip = Trip {
        trip_id: "trip-42".into(),
        traveller: "Ada".into(),
        from: "BER".into(),
        to: "LIS".into(),
        nights: 3,
    };
    println!(
        "store {}: booking {} for {} ({} -> {}, {} nights)",
        dir.display(),
        trip.trip_id,
        trip.traveller,
        trip.from,
        trip.to,
        trip.nights
    );
    // an existing id is resumed (or its stored result returned), never rerun
    let handle = runtime
        .start(trip.trip_id.clone(), book_trip(trip), IdPolicy::UseExisting)
        .await?;
    match handle.result().await? {
        Ok(it) => println!(
            "{} booked: {}, {}, {}",
            handle.id(),
            it.flight,
            it.hotel,
            it.car
        ),
        Err(e) => println!("{} failed: {e}", handle.id()),
    }
    runtime.shutdown().await;
    Ok(())
}
