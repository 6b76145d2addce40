//! Registry records drawn as their registry's typed view ([`RegistryRecord`]): a person, a
//! group with its members, a farmer, a disability status, a beneficiary with enrolments. Codes
//! are decoded by the library; the raw record stays one click away (a `details` element).

use dci_client::IdRef;
use dci_client::ops::SearchItemResult;
use dci_client::registries::{
    Beneficiary, DisabledPerson, Farmer, Group, Member, Person, RegistryRecord,
    marital_status_label,
};
use dci_protocol::RegistryType;
use maud::{Markup, html};

use super::view::{badge, scroll};

/// One answered item (search or txn status) with its records typed. `level` is the heading
/// level of each record's title (3 under an `h2`).
pub(crate) fn item_view(registry: RegistryType, item: &SearchItemResult, level: u8) -> Markup {
    html! {
        div.panel data-status=(item.status) {
            p {
                "Item " code { (item.reference_id) } ": " (badge(&item.status.to_ascii_lowercase(), &item.status))
                @if let Some(t) = &item.record_type { " · record type " (t) }
                @if let Some(t) = &item.event_type { " · event type " (t) }
                @if let Some(p) = &item.pagination {
                    " · page " (p.page_number) " (" (p.page_size) " per page) of " (p.total_count) " matching"
                }
            }
            @if let Some(reason) = &item.reason {
                p { "Registry reason: " (reason.code.as_deref().unwrap_or("")) " " (reason.message.as_deref().unwrap_or("")) }
            }
            @for (n, rec) in item.records.iter().enumerate() {
                (record_view(&RegistryRecord::read(registry, rec), n + 1, level))
            }
        }
    }
}

/// One record: a titled panel with its typed fields and the raw JSON folded away.
pub(crate) fn record_view(rec: &RegistryRecord, n: usize, level: u8) -> Markup {
    let (kind, title) = match rec {
        RegistryRecord::Person(p) => ("person", p.name.clone()),
        RegistryRecord::Group(g) => (
            "group",
            g.identifiers
                .first()
                .map(IdRef::to_string)
                .or(g.group_type.clone()),
        ),
        RegistryRecord::Farmer(f) => ("farmer", f.name.clone()),
        RegistryRecord::DisabledPerson(d) => ("disability", d.name.clone()),
        RegistryRecord::Beneficiary(b) => ("beneficiary", b.member_identifier.clone()),
    };
    let noun = match rec {
        RegistryRecord::Person(_) => "Person",
        RegistryRecord::Group(_) => "Group",
        RegistryRecord::Farmer(_) => "Farmer",
        RegistryRecord::DisabledPerson(_) => "Disability status",
        RegistryRecord::Beneficiary(_) => "Beneficiary",
    };
    let heading = format!(
        "{noun} {n}{}",
        title.map(|t| format!(": {t}")).unwrap_or_default()
    );
    html! {
        article.panel.record data-kind=(kind) {
            (h(level, &heading))
            @match rec {
                RegistryRecord::Person(p) => (person(p)),
                RegistryRecord::Group(g) => (group(g, level)),
                RegistryRecord::Farmer(f) => (farmer(f)),
                RegistryRecord::DisabledPerson(d) => (disabled(d)),
                RegistryRecord::Beneficiary(b) => (beneficiary(b, level)),
            }
            details {
                summary { "Record as received (JSON)" }
                pre { (serde_json::to_string_pretty(rec.raw()).unwrap_or_default()) }
            }
        }
    }
}

fn h(level: u8, text: &str) -> Markup {
    match level {
        2 => html! { h2 { (text) } },
        3 => html! { h3 { (text) } },
        _ => html! { h4 { (text) } },
    }
}

fn ids(ids: &[IdRef]) -> Markup {
    html! {
        @if ids.is_empty() { "—" } @else {
            @for (i, id) in ids.iter().enumerate() {
                @if i > 0 { ", " }
                (id.id_type) " " code { (id.value) }
            }
        }
    }
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("—")
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "—".into()
    } else {
        v.join(", ")
    }
}

fn person(p: &Person) -> Markup {
    html! {
        dl.record {
            dt { "Identifiers" } dd { (ids(&p.identifiers)) }
            dt { "Name" } dd { (opt(&p.name)) }
            dt { "Sex" } dd { (opt(&p.sex)) }
            dt { "Birth date" } dd { (opt(&p.birth_date)) }
            dt { "Birth place" } dd { (opt(&p.birth_place)) }
            dt { "Marital status" } dd data-field="marital_status" {
                (p.marital_status.as_deref().map(marital_status_label).unwrap_or_else(|| "—".into()))
            }
            dt { "Deceased" } dd { @if p.deceased { "yes" @if let Some(d) = &p.death_date { ", " (d) } } @else { "no" } }
        }
    }
}

fn members_table(label: &str, members: &[&Member]) -> Markup {
    scroll(
        label,
        html! {
            table.members {
                thead { tr { th { "Member" } th { "Name" } th { "Relationship" } th { "Sex" } th { "Birth date" } th { "Identifiers" } } }
                tbody { @for m in members { tr {
                    td { code { (opt(&m.member_identifier)) } }
                    td { (opt(&m.name)) }
                    td { (opt(&m.relationship)) }
                    td { (opt(&m.sex)) }
                    td { (opt(&m.birth_date)) }
                    td { (ids(&m.identifiers)) }
                } } }
            }
        },
    )
}

fn group(g: &Group, level: u8) -> Markup {
    let members: Vec<&Member> = g.members.iter().collect();
    html! {
        dl.record {
            dt { "Identifiers" } dd { (ids(&g.identifiers)) }
            dt { "Group type" } dd { (opt(&g.group_type)) }
            dt { "Size" } dd { (g.size.map(|s| s.to_string()).unwrap_or_else(|| "—".into())) }
            dt { "Poverty score" } dd { (g.poverty_score.map(|s| s.to_string()).unwrap_or_else(|| "—".into())) }
            dt { "Head" } dd { @if let Some(h) = &g.head { (opt(&h.name)) " (" code { (opt(&h.member_identifier)) } ")" } @else { "—" } }
        }
        (h(level + 1, &format!("Members ({})", g.members.len())))
        @if members.is_empty() { p.muted { "The registry listed no members." } } @else {
            (members_table("Members of the group", &members))
        }
    }
}

fn farmer(f: &Farmer) -> Markup {
    html! {
        dl.record {
            dt { "Farmer id" } dd { code { (opt(&f.member_identifier)) } }
            dt { "Identifiers" } dd { (ids(&f.identifiers)) }
            dt { "Name" } dd { (opt(&f.name)) }
            dt { "Farm type" } dd { (opt(&f.farm_type)) }
            dt { "Land area" } dd { @if let Some(a) = f.land_area_hectares { (a) " ha" } @else { "—" } }
            dt { "Place" } dd { (opt(&f.place)) }
        }
    }
}

fn disabled(d: &DisabledPerson) -> Markup {
    let s = &d.status;
    html! {
        dl.record {
            dt { "Identifiers" } dd { (ids(&d.identifiers)) }
            dt { "Name" } dd { (opt(&d.name)) }
            dt { "Sex" } dd { (opt(&d.sex)) }
            dt { "Birth date" } dd { (opt(&d.birth_date)) }
            dt { "Counts as disabled" } dd data-field="disabled" { @if s.disabled { "yes" } @else { "no" } }
            dt { "Status" } dd { (s.status.as_ref().map_or("—", |k| k.label())) }
            dt { "Level" } dd { (opt(&s.level)) }
            dt { "Impairments" } dd { (list(&d.impairment_types)) }
            @if let Some(sup) = &d.support {
                dt { "Human assistance" } dd { (match sup.human_assistance { Some(true) => "yes", Some(false) => "no", None => "—" }) }
                dt { "Assistive technology" } dd { (list(&sup.assistive_technology)) }
                dt { "Housing support" } dd { (list(&sup.housing_support)) }
                dt { "Medical care" } dd { (list(&sup.medical_care)) }
                dt { "Animal assistance" } dd { (list(&sup.animal_assistance)) }
            }
        }
    }
}

fn beneficiary(b: &Beneficiary, level: u8) -> Markup {
    html! {
        dl.record {
            dt { "Member identifier" } dd { code { (opt(&b.member_identifier)) } }
            dt { "Assistance unit" } dd { (opt(&b.assistance_unit)) }
        }
        (h(level + 1, &format!("Enrolments ({})", b.programmes.len())))
        @if b.programmes.is_empty() { p.muted { "No enrolments listed." } } @else {
            (scroll("Enrolments", html! {
                table.enrolments {
                    thead { tr { th { "Programme" } th { "Name" } th { "Status" } th { "Enrolled on" } } }
                    tbody { @for p in &b.programmes { tr {
                        td { code { (opt(&p.id)) } }
                        td { (opt(&p.name)) }
                        td { (p.status.as_ref().map_or("—", |s| s.label())) }
                        td { (opt(&p.enrolment_date)) }
                    } } }
                }
            }))
        }
    }
}

/// A value that is not a record (a status body, a subscription): its JSON, folded. Indented
/// throughout: records kept as the registry's text ([`dci_client::ops::RawRecord`]) are read
/// as values first, which a pretty printer would otherwise copy as sent.
pub(crate) fn json_block<T: serde::Serialize + ?Sized>(summary: &str, v: &T) -> Markup {
    let text = serde_json::to_value(v)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_default();
    html! {
        details {
            summary { (summary) }
            pre { (text) }
        }
    }
}
