fn main() -> std::process::ExitCode {
    wearhouse::cli::main()
}
