"""Built-in job types. Each module registers one type with @job_type; add a type by adding a module here
and importing it below."""

from runtime.job_types import generate_report, process_document, transform_data  # noqa: F401
