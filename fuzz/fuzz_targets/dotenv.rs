#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lifeboat_render::dotenv::fuzz_round_trip(data);
});
