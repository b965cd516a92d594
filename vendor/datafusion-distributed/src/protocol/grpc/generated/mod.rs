pub(crate) mod worker;
