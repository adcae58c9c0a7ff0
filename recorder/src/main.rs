mod offsets;
fn main() {}
