use super::*;

fn step(query: &str) -> Option<(String, bool)> {
    cursor_step(query).map(|s| (s.fetch, s.moved))
}

#[test]
fn fetch_and_move_in_postgresql_short_forms() {
    let fetch = |q: &str| Some((q.to_string(), false));
    let moved = |q: &str| Some((q.to_string(), true));
    assert_eq!(step("FETCH c"), fetch("FETCH NEXT FROM c"));
    assert_eq!(step("fetch 2 c;"), fetch("FETCH 2 FROM c"));
    assert_eq!(
        step("FETCH FORWARD ALL IN c"),
        fetch("FETCH FORWARD ALL IN c")
    );
    assert_eq!(step("  MOVE c"), moved("FETCH NEXT FROM c"));
    assert_eq!(
        step("MOVE FORWARD 5 FROM m"),
        moved("FETCH FORWARD 5 FROM m")
    );
    assert_eq!(step("move 3 m"), moved("FETCH 3 FROM m"));
    assert_eq!(step("FETCH c; FETCH c"), None);
    assert_eq!(step("FETCHES"), None);
    assert_eq!(step("FETCH"), None);
    assert_eq!(step("SELECT 1"), None);
}
