//! The Spindle broker: a Kafka protocol server, one glommio executor per core.
