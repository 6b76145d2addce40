//! Deterministic seeded data for the five registries.
//!
//! One population of people is generated from the seed and shared by the registries, so that a
//! person found in CRVS by UIN is the same person in DR, IBR, the social registry and FR. No
//! wall clock is read: every date is derived from the seed, so two sandboxes with the same seed
//! serve byte-identical records.

use std::collections::{BTreeMap, HashSet};

use dci_protocol::RegistryType;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// A searchable record: the JSON served in `reg_records`, plus what searches match on.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// `(id_type, id_value)` pairs, id types upper-case (`UIN`, `BRN`, …).
    pub(crate) ids: Vec<(String, String)>,
    /// Flat attributes for predicates and expressions; an array value matches if any item does.
    pub(crate) attrs: Map<String, Value>,
    /// Vital events `(event_type, date)`; `event_type`/`event_date` predicates bind to one event.
    pub(crate) events: Vec<(String, String)>,
    /// The record as served.
    pub(crate) json: Value,
}

/// The seeded records of every registry.
#[derive(Debug, Clone)]
pub(crate) struct Dataset {
    pub(crate) registries: BTreeMap<RegistryType, Vec<Record>>,
}

impl Dataset {
    pub(crate) fn records(&self, registry: RegistryType) -> &[Record] {
        self.registries
            .get(&registry)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// An identifier in `GET /admin/examples`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ExampleId {
    /// The identifier type, e.g. `UIN`.
    pub id_type: String,
    /// The identifier value.
    pub id_value: String,
}

/// Per registry: identifiers that exist and one that does not (`GET /admin/examples`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RegistryExamples {
    /// Identifiers that exist, with a short note of why each is interesting.
    pub found: Vec<ExampleId>,
    /// An identifier of a valid type that matches no record.
    pub not_found: ExampleId,
}

/// SplitMix64: tiny, stable across crate versions (unlike `StdRng`), which keeps the data fixed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const GIVEN_F: &[&str] = &[
    "Amina", "Elena", "Grace", "Fatima", "Maria", "Aisha", "Nadia", "Rosa", "Leila", "Chipo",
    "Ana", "Mei", "Zara", "Thandi", "Lucia", "Esther",
];
const GIVEN_M: &[&str] = &[
    "Joseph", "Samuel", "Daniel", "Omar", "Carlos", "Juma", "Peter", "Ravi", "Tomas", "Kofi",
    "Ali", "Jonas", "Felix", "Musa", "Pablo", "Yusuf",
];
const SURNAMES: &[&str] = &[
    "Banda", "Martinez", "Okafor", "Phiri", "Santos", "Mensah", "Hassan", "Nguyen", "Dlamini",
    "Silva", "Kamau", "Moyo", "Garcia", "Otieno", "Reyes", "Tembo",
];
const DISTRICTS: &[&str] = &["Central", "Northern", "Southern", "Eastern", "Western"];
const TOWNS: &[&str] = &[
    "Ilanga", "Chuma", "Pembe", "Zawadi", "Mto", "Kilima", "Nyota", "Bahari",
];

/// A person of the shared population (CRVS is the authoritative view).
#[derive(Debug, Clone)]
struct Person {
    uin: String,
    brn: String,
    given: String,
    surname: String,
    sex: &'static str,
    birth_date: String,
    birth_place: String,
    district: String,
    death: Option<(String, String)>,
    marriage: Option<(String, String)>,
    divorce: Option<(String, String)>,
    parents: Option<(String, String)>,
}

impl Person {
    fn alive(&self) -> bool {
        self.death.is_none()
    }
    fn name(&self) -> Value {
        json!({"given_name": self.given, "surname": self.surname})
    }
    fn birth_year(&self) -> u64 {
        self.birth_date[..4].parse().unwrap_or(1980)
    }
}

const POPULATION: usize = 80;

fn date(year: u64, rng: &mut Rng) -> String {
    format!(
        "{year:04}-{:02}-{:02}",
        1 + rng.below(12),
        1 + rng.below(28)
    )
}

fn population(seed: u64) -> Vec<Person> {
    let mut rng = Rng(seed ^ 0x05EE_DDC1);
    let mut used = HashSet::new();
    let mut people: Vec<Person> = Vec::with_capacity(POPULATION);
    for i in 0..POPULATION {
        let uin = loop {
            let v = format!("{}", 1_000_000_000 + rng.below(8_999_999_999));
            if used.insert(v.clone()) {
                break v;
            }
        };
        let female = rng.below(2) == 0;
        let (sex, given) = if female {
            ("female", rng.pick(GIVEN_F).to_owned())
        } else {
            ("male", rng.pick(GIVEN_M).to_owned())
        };
        // Older people first so that children can point at parents already generated.
        let year = 1935 + (i as u64 * 85 / POPULATION as u64) + rng.below(3);
        let birth_date = date(year.min(2025), &mut rng);
        let brn = format!("BRN-{}-{:05}", &birth_date[..4], 10_000 + i * 37 % 90_000);
        let death = (i % 7 == 3).then(|| {
            let y = (year + 20 + rng.below(60)).min(2025);
            (
                date(y, &mut rng),
                format!("DRN-{y}-{:05}", 20_000 + i * 53 % 80_000),
            )
        });
        let adult_at = year + 18;
        let marriage = (i % 3 == 0 && adult_at <= 2024).then(|| {
            let y = (adult_at + rng.below(10)).min(2025);
            (
                date(y, &mut rng),
                format!("MRN-{y}-{:05}", 30_000 + i * 71 % 70_000),
            )
        });
        let divorce = match &marriage {
            Some((m, _)) if i % 4 == 0 => {
                let my: u64 = m[..4].parse().unwrap_or(2000);
                let y = (my + 1 + rng.below(8)).min(2025);
                Some((
                    date(y, &mut rng),
                    format!("DVN-{y}-{:05}", 40_000 + i * 13 % 60_000),
                ))
            }
            _ => None,
        };
        let parents = if i >= 20 {
            let a = rng.below((i / 2) as u64) as usize;
            let b = (a + 1 + rng.below(5) as usize) % (i / 2).max(2);
            Some((people[a].uin.clone(), people[b].uin.clone()))
        } else {
            None
        };
        people.push(Person {
            uin,
            brn,
            given,
            surname: rng.pick(SURNAMES).to_owned(),
            sex,
            birth_date,
            birth_place: format!("{} District Hospital", rng.pick(TOWNS)),
            district: rng.pick(DISTRICTS).to_owned(),
            death,
            marriage,
            divorce,
            parents,
        });
    }
    people
}

fn id(t: &str, v: &str) -> Value {
    json!({"identifier_type": t, "identifier_value": v})
}

fn crvs(people: &[Person]) -> Vec<Record> {
    people
        .iter()
        .map(|p| {
            let mut ids = vec![("UIN".to_owned(), p.uin.clone()), ("BRN".to_owned(), p.brn.clone())];
            let mut events = vec![("live_birth".to_owned(), p.birth_date.clone())];
            let mut id_list = vec![id("UIN", &p.uin), id("BRN", &p.brn)];
            let mut vital = vec![json!({"event_type": "live_birth", "event_date": p.birth_date, "registration_number": p.brn})];
            if let Some((d, n)) = &p.death {
                ids.push(("DRN".to_owned(), n.clone()));
                events.push(("death".to_owned(), d.clone()));
                id_list.push(id("DRN", n));
                vital.push(json!({"event_type": "death", "event_date": d, "registration_number": n}));
            }
            if let Some((d, n)) = &p.marriage {
                ids.push(("MRN".to_owned(), n.clone()));
                events.push(("marriage".to_owned(), d.clone()));
                id_list.push(id("MRN", n));
                vital.push(json!({"event_type": "marriage", "event_date": d, "registration_number": n}));
            }
            if let Some((d, n)) = &p.divorce {
                events.push(("divorce".to_owned(), d.clone()));
                vital.push(json!({"event_type": "divorce", "event_date": d, "registration_number": n}));
            }
            let marital_status = match (&p.marriage, &p.divorce) {
                (Some(_), Some(_)) => "D",
                (Some(_), None) => "M",
                _ => "S",
            };
            let mut json = json!({
                "@type": "Person",
                "identifier": id("UIN", &p.uin),
                "identifiers": id_list,
                "name": p.name(),
                "sex": p.sex,
                "birth_date": p.birth_date,
                "birth_place": {"name": p.birth_place},
                "death_date": p.death.as_ref().map(|d| d.0.clone()),
                "address": {"locality": p.district, "country_code": "SB"},
                "marital_status": marital_status,
                "marriage_date": p.marriage.as_ref().map(|d| d.0.clone()),
                "divorce_date": p.divorce.as_ref().map(|d| d.0.clone()),
                "parent1_identifier": p.parents.as_ref().map(|x| id("UIN", &x.0)),
                "parent2_identifier": p.parents.as_ref().map(|x| id("UIN", &x.1)),
                "vital_events": vital,
                "is_deceased": !p.alive(),
            });
            // Absent rather than null: the spec types these as plain strings/objects.
            if let Some(m) = json.as_object_mut() {
                m.retain(|_, v| !v.is_null());
            }
            let mut attrs = Map::new();
            attrs.insert("uin".into(), json!(p.uin));
            attrs.insert("given_name".into(), json!(p.given));
            attrs.insert("surname".into(), json!(p.surname));
            attrs.insert("sex".into(), json!(p.sex));
            attrs.insert("birth_date".into(), json!(p.birth_date));
            attrs.insert("birthdate".into(), json!(p.birth_date));
            attrs.insert("birth_place".into(), json!(p.birth_place));
            attrs.insert("birthplace".into(), json!(p.birth_place));
            attrs.insert("location".into(), json!(p.district));
            attrs.insert("marital_status".into(), json!(marital_status));
            attrs.insert("is_deceased".into(), json!(!p.alive()));
            attrs.insert("age".into(), json!(2026 - p.birth_year()));
            if let Some((d, _)) = &p.death {
                attrs.insert("death_date".into(), json!(d));
            }
            if let Some((d, _)) = &p.marriage {
                attrs.insert("marriage_date".into(), json!(d));
            }
            if let Some((d, _)) = &p.divorce {
                attrs.insert("divorce_date".into(), json!(d));
            }
            Record { ids, attrs, events, json }
        })
        .collect()
}

fn dr(people: &[Person], rng: &mut Rng) -> Vec<Record> {
    const IMPAIRMENTS: &[&str] = &[
        "visual",
        "hearing",
        "physical",
        "intellectual",
        "psychosocial",
    ];
    const STATUSES: &[&str] = &["Approved", "Pending", "Expired"];
    people
        .iter()
        .enumerate()
        .filter(|(i, p)| i % 4 == 1 && p.alive())
        .enumerate()
        .map(|(n, (_, p))| {
            let status = STATUSES[n % 3];
            let dr_id = format!("DR-{:06}", 100_000 + n * 17);
            let impairment = rng.pick(IMPAIRMENTS);
            let level = ["mild", "moderate", "severe"][rng.below(3) as usize];
            let details = json!([{"impairment_type": impairment, "impairment_level": level,
                "impairment_cause": if n % 2 == 0 { "congenital" } else { "acquired" },
                "age_on_set": rng.below(40)}]);
            let support = json!({
                "human_assistance": n % 2 == 0,
                "assistive_technology": match impairment {
                    "visual" => json!(["white cane", "screen reader"]),
                    "hearing" => json!(["hearing aid"]),
                    "physical" => json!(["wheelchair"]),
                    _ => json!([]),
                },
                "housing_support": if n % 3 == 0 { json!(["ramp access"]) } else { json!([]) },
                "medical_care": json!(["quarterly check-up"]),
                "animal_assistance": if impairment == "visual" && n % 2 == 1 { json!(["guide dog"]) } else { json!([]) },
            });
            let reg_year = 2015 + rng.below(10);
            let registration_date = date(reg_year, rng);
            let json = json!({
                "@type": "DisabledPerson",
                "personal_details": {
                    "identifier": [id("UIN", &p.uin), id("DR_ID", &dr_id)],
                    "name": p.name(),
                    "date_of_birth": p.birth_date,
                    "gender": p.sex,
                },
                "disability_status": status,
                "disability_level": level,
                "disability_details": details,
                "disability_support": support,
                "transport_requirement": if impairment == "physical" { "accessible vehicle" } else { "none" },
                "housing_type": if n % 2 == 0 { "urban" } else { "rural" },
                "programs_enrollments": [],
                "registration_date": registration_date,
                "last_updated": registration_date,
            });
            let mut attrs = Map::new();
            attrs.insert("uin".into(), json!(p.uin));
            attrs.insert("disability_status".into(), json!(status));
            attrs.insert("disability_level".into(), json!(level));
            attrs.insert("impairment_type".into(), json!(impairment));
            attrs.insert("sex".into(), json!(p.sex));
            attrs.insert("gender".into(), json!(p.sex));
            attrs.insert("birth_date".into(), json!(p.birth_date));
            attrs.insert("registration_date".into(), json!(registration_date));
            attrs.insert("member.member_identifier".into(), json!(p.uin));
            Record {
                ids: vec![("UIN".to_owned(), p.uin.clone()), ("DR_ID".to_owned(), dr_id)],
                attrs,
                events: Vec::new(),
                json,
            }
        })
        .collect()
}

const PROGRAMMES: &[(&str, &str)] = &[
    ("PRG-CT-01", "Child Grant"),
    ("PRG-OA-02", "Old Age Pension"),
    ("PRG-DS-03", "Disability Support Grant"),
    ("PRG-FS-04", "Food Security Programme"),
];

fn ibr(people: &[Person], rng: &mut Rng) -> Vec<Record> {
    const STATUSES: &[&str] = &["Active", "Active", "Graduated", "Suspended"];
    people
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 2 || i % 7 == 3)
        .enumerate()
        .map(|(n, (i, p))| {
            let nid = format!("NID-{}", &p.uin[..8]);
            // Every fourth beneficiary is in two programmes: the "enrolled in two" case.
            let count = if n % 4 == 0 { 2 } else { 1 };
            let mut programmes = Vec::new();
            let mut enrolments = Vec::new();
            for k in 0..count {
                let (code, name) = PROGRAMMES[(n + k * 2) % PROGRAMMES.len()];
                let status = if p.alive() { STATUSES[(n + k) % STATUSES.len()] } else { "Deceased" };
                let enrolment_date = date(2016 + rng.below(9), rng);
                programmes.push(json!(code));
                enrolments.push(json!({
                    "programme": {"programme_identifier": code, "programme_name": name},
                    "enrolment_date": enrolment_date,
                    "enrolment_status": status,
                    "status_change_date": enrolment_date,
                    "benefits": {"benefit_type": "cash", "benefit_date": enrolment_date,
                        "benefit_value": 50 + 25 * rng.below(6), "benefit_frequency": "monthly"},
                }));
            }
            let json = json!({
                "@type": "Beneficiary",
                "assistance_unit": format!("AU-{:04}", 1 + i / 3),
                "member": {
                    "member_identifier": p.uin,
                    "demographic_info": {"person": {
                        "identifier_type": "UIN", "identifier_value": p.uin,
                        "name": {"first_name": p.given, "surname": p.surname},
                        "sex": p.sex, "birth_date": p.birth_date,
                    }},
                },
                "programme_identifier": if count == 1 { enrolments[0].clone() } else { Value::Array(enrolments.clone()) },
                "enrolments": enrolments,
            });
            let mut attrs = Map::new();
            attrs.insert("uin".into(), json!(p.uin));
            attrs.insert("person_identifier".into(), json!(p.uin));
            attrs.insert("programme_identifier".into(), Value::Array(programmes.clone()));
            attrs.insert("programme".into(), Value::Array(programmes));
            attrs.insert(
                "enrolment_status".into(),
                Value::Array(
                    json["enrolments"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|e| e["enrolment_status"].clone())
                        .collect(),
                ),
            );
            attrs.insert("sex".into(), json!(p.sex));
            attrs.insert("birth_date".into(), json!(p.birth_date));
            Record {
                ids: vec![("UIN".to_owned(), p.uin.clone()), ("NID".to_owned(), nid)],
                attrs,
                events: Vec::new(),
                json,
            }
        })
        .collect()
}

fn member(p: &Person, relation: &str) -> Value {
    json!({
        "member_identifier": p.uin,
        "demographic_info": {
            "identifier": [id("UIN", &p.uin)],
            "name": p.name(),
            "sex": p.sex,
            "birth_date": p.birth_date,
        },
        "relationship_to_head": relation,
        "marital_status": if p.marriage.is_some() { "M" } else { "S" },
    })
}

fn social(people: &[Person], rng: &mut Rng) -> Vec<Record> {
    let living: Vec<&Person> = people.iter().filter(|p| p.alive()).collect();
    let mut out = Vec::new();
    let mut next = 0;
    let mut g = 0;
    while next + 2 <= living.len() && g < 14 {
        let size = (2 + rng.below(4) as usize).min(living.len() - next);
        let members = &living[next..next + size];
        next += size;
        g += 1;
        let group_id = format!("HH-{:04}", g);
        let head = members[0];
        let poverty_score = (rng.below(100) as f64) / 10.0;
        let district = head.district.clone();
        let registration_date = date(2018 + rng.below(7), rng);
        let member_list: Vec<Value> = members
            .iter()
            .enumerate()
            .map(|(k, p)| member(p, if k == 0 { "head" } else { "member" }))
            .collect();
        let json = json!({
            "@type": "Group",
            "group_identifier": [{"identifier_type": "HOUSEHOLD_ID", "identifier_value": group_id}],
            "group_type": "household",
            "place": {"name": district},
            "poverty_score": poverty_score,
            "poverty_score_type": "PMT",
            "group_head_info": member(head, "head"),
            "group_size": size,
            "member_list": member_list,
            "registration_date": registration_date,
            "last_updated": registration_date,
        });
        let mut ids = vec![("HOUSEHOLD_ID".to_owned(), group_id.clone())];
        for p in members {
            ids.push(("UIN".to_owned(), p.uin.clone()));
        }
        let mut attrs = Map::new();
        attrs.insert("poverty_score".into(), json!(poverty_score));
        attrs.insert("group_size".into(), json!(size));
        attrs.insert("location".into(), json!(district));
        attrs.insert("group_type".into(), json!("household"));
        attrs.insert("registration_date".into(), json!(registration_date));
        attrs.insert(
            "member_identifier".into(),
            Value::Array(members.iter().map(|p| json!(p.uin)).collect()),
        );
        out.push(Record {
            ids,
            attrs,
            events: Vec::new(),
            json,
        });
    }
    out
}

fn fr(people: &[Person], rng: &mut Rng) -> Vec<Record> {
    const CROPS: &[&str] = &["maize", "cassava", "rice", "beans", "groundnuts", "sorghum"];
    const FARM_TYPES: &[&str] = &["crop", "livestock", "mixed"];
    people
        .iter()
        .enumerate()
        .filter(|(i, p)| i % 5 == 4 && p.alive())
        .enumerate()
        .map(|(n, (_, p))| {
            let farmer_id = format!("FARMER-{:05}", 1 + n);
            let farm_type = FARM_TYPES[n % 3];
            let crop = rng.pick(CROPS);
            let area = 0.5 + (rng.below(100) as f64) / 10.0;
            let registration_date = date(2017 + rng.below(8), rng);
            let json = json!({
                "@type": "Farmer",
                "farmer_personal_details": {
                    "member_identifier": farmer_id,
                    "demographic_info": {
                        "identifier": [id("UIN", &p.uin), id("FARMER_ID", &farmer_id)],
                        "name": p.name(), "sex": p.sex, "birth_date": p.birth_date,
                    },
                },
                "farm_details": {
                    "place": {"name": p.district},
                    "farm_type": farm_type,
                    "land_area_hectares": area,
                    "farming_activities": {"crops": [crop]},
                },
                "machineries_details": if n % 2 == 0 { json!([{"machine_type": "tractor", "count": 1}]) } else { json!([]) },
                "registration_date": registration_date,
                "last_updated": registration_date,
            });
            let mut attrs = Map::new();
            attrs.insert("uin".into(), json!(p.uin));
            attrs.insert("farm_type".into(), json!(farm_type));
            attrs.insert("crop".into(), json!(crop));
            attrs.insert("land_area".into(), json!(area));
            attrs.insert("location".into(), json!(p.district));
            attrs.insert("sex".into(), json!(p.sex));
            attrs.insert("registration_date".into(), json!(registration_date));
            Record {
                ids: vec![("UIN".to_owned(), p.uin.clone()), ("FARMER_ID".to_owned(), farmer_id)],
                attrs,
                events: Vec::new(),
                json,
            }
        })
        .collect()
}

/// Builds the whole dataset from `seed`.
pub(crate) fn generate(seed: u64) -> Dataset {
    let people = population(seed);
    let mut rng = Rng(seed.wrapping_mul(31).wrapping_add(7));
    let mut registries = BTreeMap::new();
    registries.insert(RegistryType::Crvs, crvs(&people));
    registries.insert(RegistryType::Dr, dr(&people, &mut rng));
    registries.insert(RegistryType::Ibr, ibr(&people, &mut rng));
    registries.insert(RegistryType::Social, social(&people, &mut rng));
    registries.insert(RegistryType::Fr, fr(&people, &mut rng));
    Dataset { registries }
}

fn first_with(
    records: &[Record],
    pred: impl Fn(&Record) -> bool,
    id_type: &str,
) -> Option<ExampleId> {
    records.iter().filter(|r| pred(r)).find_map(|r| {
        r.ids
            .iter()
            .find(|(t, _)| t == id_type)
            .map(|(t, v)| ExampleId {
                id_type: t.clone(),
                id_value: v.clone(),
            })
    })
}

/// Identifiers that exist per registry (the interesting cases first) and one that does not.
pub(crate) fn examples(data: &Dataset) -> BTreeMap<RegistryType, RegistryExamples> {
    let mut out = BTreeMap::new();
    let missing = |t: &str| ExampleId {
        id_type: t.to_owned(),
        id_value: if t == "UIN" {
            "0000000000".to_owned()
        } else {
            format!("{t}-000000")
        },
    };
    let crvs = data.records(RegistryType::Crvs);
    let mut found = Vec::new();
    found.extend(first_with(crvs, |r| r.attrs["is_deceased"] == false, "UIN"));
    found.extend(first_with(crvs, |_| true, "BRN"));
    found.extend(first_with(crvs, |_| true, "DRN"));
    found.extend(first_with(crvs, |_| true, "MRN"));
    found.extend(first_with(
        crvs,
        |r| r.attrs.contains_key("death_date"),
        "UIN",
    ));
    found.extend(first_with(
        crvs,
        |r| r.attrs.contains_key("divorce_date"),
        "UIN",
    ));
    out.insert(
        RegistryType::Crvs,
        RegistryExamples {
            found,
            not_found: missing("UIN"),
        },
    );

    let dr = data.records(RegistryType::Dr);
    let mut found = Vec::new();
    for status in ["Approved", "Pending", "Expired"] {
        found.extend(first_with(
            dr,
            |r| r.attrs["disability_status"] == status,
            "UIN",
        ));
    }
    found.extend(first_with(dr, |_| true, "DR_ID"));
    out.insert(
        RegistryType::Dr,
        RegistryExamples {
            found,
            not_found: missing("UIN"),
        },
    );

    let ibr = data.records(RegistryType::Ibr);
    let mut found = Vec::new();
    let two = |r: &Record| {
        r.attrs["programme_identifier"]
            .as_array()
            .is_some_and(|a| a.len() > 1)
    };
    found.extend(first_with(ibr, two, "UIN"));
    found.extend(first_with(ibr, |r| !two(r), "UIN"));
    found.extend(first_with(
        ibr,
        |r| r.attrs["enrolment_status"].to_string().contains("Deceased"),
        "UIN",
    ));
    found.extend(first_with(ibr, |_| true, "NID"));
    out.insert(
        RegistryType::Ibr,
        RegistryExamples {
            found,
            not_found: missing("UIN"),
        },
    );

    let social = data.records(RegistryType::Social);
    let mut found = Vec::new();
    found.extend(first_with(social, |_| true, "HOUSEHOLD_ID"));
    found.extend(first_with(social, |_| true, "UIN"));
    out.insert(
        RegistryType::Social,
        RegistryExamples {
            found,
            not_found: missing("HOUSEHOLD_ID"),
        },
    );

    let fr = data.records(RegistryType::Fr);
    let mut found = Vec::new();
    found.extend(first_with(fr, |_| true, "FARMER_ID"));
    found.extend(first_with(fr, |_| true, "UIN"));
    out.insert(
        RegistryType::Fr,
        RegistryExamples {
            found,
            not_found: missing("FARMER_ID"),
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data_and_cases_exist() {
        let a = generate(7);
        let b = generate(7);
        for r in RegistryType::ALL {
            let ja: Vec<_> = a.records(r).iter().map(|x| x.json.clone()).collect();
            let jb: Vec<_> = b.records(r).iter().map(|x| x.json.clone()).collect();
            assert_eq!(ja, jb, "{r}");
            assert!(a.records(r).len() >= 5, "{r} has too few records");
        }
        let ex = examples(&a);
        assert_eq!(ex[&RegistryType::Crvs].found.len(), 6);
        assert_eq!(ex[&RegistryType::Dr].found.len(), 4);
        assert_eq!(ex[&RegistryType::Ibr].found.len(), 4);
        assert_ne!(
            generate(8).records(RegistryType::Crvs)[0].json,
            a.records(RegistryType::Crvs)[0].json
        );
    }
}
