// The import pipeline is wired to the CLI and HTTP upload separately; until then it is only
// reachable from tests.
#[allow(dead_code, unused_imports)]
mod ingest;

fn main() {}
