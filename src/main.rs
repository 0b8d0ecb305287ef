//! The `converge` command line.

fn main() {
    println!("converge");
}
