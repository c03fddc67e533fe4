"""What the App's console tells the e2e tests."""

#: What FiftyOne 1.22's App logs each time it loses a label-painting worker (one per CPU
#: core, never given back; with all of them gone no overlay is drawn until a reload): see
#: docs/architecture.md, "The panel and the App's label painting".
PAINT_ERROR = "ArrayBuffer is detached"
