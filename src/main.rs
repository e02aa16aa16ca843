fn main() {
    println!("vml-filter {}", env!("CARGO_PKG_VERSION"));
}
