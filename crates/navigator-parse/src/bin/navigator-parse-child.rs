//! The sandbox child: parses one document from stdin and writes the JSON result to stdout.
//! Spawned by `navigator_parse::parse_in_sandbox`; see `navigator_parse::sandbox` for the protocol.

fn main() {
    std::process::exit(navigator_parse::sandbox_child_main());
}
