//! The echo backend, for the harness's own tests (the root package ships it as `isobar-echo`).

fn main() {
    isobar_harness::echo::main_from_args()
}
