//! placeholder until the PostgreSQL adapter lands
