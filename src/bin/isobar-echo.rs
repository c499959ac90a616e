fn main() {
    isobar_harness::echo::main_from_args()
}
