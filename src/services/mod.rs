//! The application's workflows, called by the HTTP handlers (which only authenticate, parse,
//! call a service and map its error) and by the job handlers.

pub mod archival;
pub mod backfills;
pub mod connections;
pub mod imports;
pub mod sdk;
pub mod seed;
pub mod syncs;
pub mod vendor_workouts;
pub mod webhooks;
