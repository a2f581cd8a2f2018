#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lifeboat_mysql::fuzzing::binlog_file(data);
});
