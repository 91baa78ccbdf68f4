//! The vocabulary of the handlers' `#[utoipa::path]` annotations: the inputs of each operation and the
//! problems each can answer. It knows nothing of the handlers, and `crate::openapi` assembles the document
//! from both, so neither imports the other.

mod inputs;
mod problems;

pub(crate) use inputs::{AddRequestSchema, BalanceParams, HistoryParams, IdempotencyKeyParam, UserIdParam};
pub(crate) use problems::{
    AddProblems, BalanceProblems, HistoryProblems, OperationProblems, ProblemSchema, ReadyProblems, problem_response,
    sole_problem_response,
};
