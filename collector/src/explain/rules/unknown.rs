//! `unknown`: no rule recognised the outcome. Never dropped: the raw code, flags (with their
//! meanings) and details are the finding.

use super::{Diagnosis, Rule, code, flag_names, subject};
use crate::explain::Cause;
use crate::explain::commands::Next;
use crate::explain::finding::Confidence;
use crate::explain::group::{Context, Group};

pub(crate) struct Unknown;

impl Rule for Unknown {
    fn cause(&self) -> Cause {
        Cause::Unknown
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        let record = group.record();
        let details = if record.response_code_details.is_empty() {
            "no details".to_owned()
        } else {
            record.response_code_details.clone()
        };
        let mut next = Next::new(group, context);
        if let Some((_, id)) = group.samples.first() {
            next.push(format!("meshwhy records --request-id {id}"));
        }
        next.proxy_status().proxy_logs("warn|error");
        let mut diagnosis = Diagnosis::new(
            format!(
                "{}: unrecognised outcome {} {} {details}",
                subject(group),
                code(group),
                flag_names(group.flags)
            ),
            Confidence::Low,
        )
        .commands(next);
        for bit in 0..u64::BITS {
            if group.flags & (1u64 << bit) == 0 {
                continue;
            }
            diagnosis = diagnosis.note(match crate::flags::info(bit) {
                Some(flag) => format!("{}: {}", flag.name, flag.meaning),
                None => format!("bit{bit}: a flag this version of meshwhy does not know"),
            });
        }
        Some(diagnosis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::testkit::*;

    #[test]
    fn keeps_raw_evidence_and_unknown_bits() {
        let mut record = outbound(503, "LH", "something_new");
        record.response_flags |= 1 << 40;
        let diagnosis = check(&Unknown, client(), record).unwrap();
        assert!(
            diagnosis
                .title
                .contains("unrecognised outcome 503 LH,bit40 something_new"),
            "{}",
            diagnosis.title
        );
        assert_eq!(diagnosis.notes.len(), 2);
        assert!(diagnosis.notes[1].starts_with("bit40"));
        assert_eq!(
            diagnosis.next_commands[0],
            "meshwhy records --request-id req-1"
        );
    }
}
