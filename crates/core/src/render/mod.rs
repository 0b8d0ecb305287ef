//! Renderers: a plan as text for the terminal, Markdown for a pull-request
//! comment, or JSON for machines. Each is a pure function of the plan.
