fn main() -> std::process::ExitCode {
    navigator_server::cli::main()
}
