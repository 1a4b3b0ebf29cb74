"""What a drill leaves: the journal record (JSON, Markdown, JUnit) and the HTML reports drawn from it."""
