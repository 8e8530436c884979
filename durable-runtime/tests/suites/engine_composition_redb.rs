// Tests of the engine_composition suite run on redb only: included after the
// suite in its `redb` module (`common::suite!`).

#[workflow]
async fn undoes_a_flight(trip: String) -> Result<Vec<Option<String>>, WorkflowError> {
    let mut saga = Saga::new();
    saga.add(unbook(trip, "flight".into()));
    Ok(saga.compensate().await)
}

/// A saga's compensation is stored by name and found by it when it runs.
/// This binary links the suite once per backend, so `unbook` is linked
/// twice (in modules `redb` and `postgres`): a runtime not told which one
/// it runs fails the compensation naming both modules, and runs neither;
/// a runtime told (`Builder::activity`) runs its own. Before the runtime
/// could be told, the suites ran one binary per backend.
#[tokio::test]
async fn a_compensation_whose_name_two_activities_share_runs_the_one_its_runtime_names() {
    let db = BACKEND.store();
    let untold = Runtime::builder().workflow::<undoes_a_flight>();
    let out = undo_a_flight_on(untold, db.url(), "untold").await;
    let why = out[0].clone().expect("the compensation failed");
    assert!(
        why.contains("two activities are named `unbook`")
            && why.contains("engine_composition::redb")
            && why.contains("engine_composition::postgres"),
        "{why}"
    );
    assert_eq!(count("unbook untold"), 0, "neither ran");

    let told = Runtime::builder()
        .workflow::<undoes_a_flight>()
        .activity::<unbook>();
    assert_eq!(undo_a_flight_on(told, db.url(), "told").await, [None]);
    assert_eq!(lines("unbook told"), ["unbook told flight"]);
}

/// What [`undoes_a_flight`] returns, run as instance `id` by a runtime
/// `builder` opens on `url`.
async fn undo_a_flight_on(
    builder: durable_runtime::Builder,
    url: &str,
    id: &str,
) -> Vec<Option<String>> {
    let rt = builder.open_url(url).await.unwrap();
    let out = rt
        .start(id, undoes_a_flight(id.into()), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .within()
        .await
        .unwrap()
        .unwrap();
    rt.shutdown().await;
    out
}
