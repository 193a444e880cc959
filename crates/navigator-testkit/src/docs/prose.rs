//! Realistic Evidence-of-Coverage-style prose, deterministic from a seed.

use crate::rng::XorShift64;

/// Characters a generated page aims for (a dense printed page of an EOC booklet).
const PAGE_CHARS: usize = 2_500;
/// Pages per chapter; each chapter starts with a `#` heading.
const PAGES_PER_CHAPTER: usize = 4;

/// The sentence that only page [`KNOWN_PASSAGE_PAGE`] of [`known_passage_pages`] contains.
pub const KNOWN_PASSAGE: &str =
    "Emergency dental care is reimbursed at 80 percent after the deductible.";
/// The 1-based page of [`known_passage_pages`] holding [`KNOWN_PASSAGE`].
pub const KNOWN_PASSAGE_PAGE: u32 = 3;

const CHAPTERS: &[&str] = &[
    "Getting Started as a Member",
    "Your Medical Benefits",
    "Using Network Providers",
    "Prescription Drug Coverage",
    "Asking for Coverage Decisions and Appeals",
    "Paying Your Share of Costs",
    "Vision and Hearing Benefits",
    "Exclusions and Limitations",
    "Coordination with Other Coverage",
    "Ending Your Membership",
    "Your Rights and Responsibilities",
    "Legal Notices",
];

const SECTIONS: &[&str] = &[
    "Out-of-Network Services",
    "Prior Authorization Requirements",
    "Emergency and Urgent Care",
    "How to File a Claim",
    "Your Annual Deductible",
    "Copayments and Coinsurance",
    "Filing a Grievance",
    "Fast Appeals",
    "Preventive Services",
    "Hospital Inpatient Stays",
    "Skilled Nursing Facility Care",
    "Behavioral Health Services",
    "Durable Medical Equipment",
    "Coordination of Benefits",
    "Your Out-of-Pocket Maximum",
    "Telehealth Visits",
    "Ambulance Services",
    "Specialist Referrals",
    "Formulary Exceptions",
    "Continuity of Care",
    "Independent External Review",
    "Balance Billing Protections",
];

const SERVICES: &[&str] = &[
    "physical therapy",
    "an MRI or CT scan",
    "outpatient surgery",
    "home health care",
    "allergy testing",
    "chiropractic care",
    "a sleep study",
    "genetic testing",
    "infusion therapy",
    "cardiac rehabilitation",
    "speech therapy",
    "hearing aids",
    "a colonoscopy",
    "dialysis",
    "occupational therapy",
];

const AMOUNTS: &[&str] = &[
    "$250", "$500", "$750", "$1,000", "$1,500", "$2,000", "$2,500", "$3,000", "$4,500", "$6,350",
    "$9,100",
];
const COPAYS: &[&str] = &[
    "$0", "$10", "$15", "$20", "$25", "$30", "$40", "$50", "$75", "$100",
];
const PERCENTS: &[&str] = &["10", "20", "25", "30", "40", "50", "60", "70"];
const DAYS: &[&str] = &["30", "45", "60", "90", "180", "365"];

const SENTENCES: &[&str] = &[
    "Your plan pays {pct} percent of the allowed amount for {service} after you meet the annual deductible of {amount}.",
    "Before you receive {service}, your provider must request prior authorization from the plan.",
    "If prior authorization is not obtained, the claim for {service} may be denied and you may owe the full cost.",
    "You pay a {copay} copayment for each visit to a primary care provider in the network.",
    "Specialist visits require a {copay} copayment, and a referral from your primary care provider may be needed.",
    "Out-of-network providers may bill you for the difference between their charge and the allowed amount; this is called balance billing.",
    "The out-of-pocket maximum for in-network services is {amount} per member each plan year.",
    "Claims must be submitted within {days} days of the date of service, unless it was not reasonably possible to do so.",
    "You may file an appeal within {days} days of receiving a notice of adverse benefit determination.",
    "A fast appeal is decided within 72 hours when waiting for a standard decision could seriously harm your health.",
    "We will send you a written Explanation of Benefits after each claim is processed.",
    "Coinsurance is the share of the allowed amount you pay after the deductible is met; for {service} it is {pct} percent.",
    "Coverage for {service} is limited to {visits} visits per calendar year.",
    "Call Member Services at 1-800-555-{phone} (TTY 711), Monday through Friday, 8 a.m. to 8 p.m., with questions about {service}.",
    "Urgently needed services are covered anywhere in the United States, even when you are outside the service area.",
    "The deductible does not apply to preventive services received from a network provider.",
    "Prescription drugs on tier {tier} of the formulary have a {copay} copayment for a 30-day supply at a preferred pharmacy.",
    "You can ask for a formulary exception if your doctor says that a covered alternative would not be as effective for you.",
    "If we deny your request for {service}, you have the right to an independent external review.",
    "Inpatient hospital stays require notification within {hours} hours of admission.",
    "When you have other coverage, coordination of benefits rules decide which plan pays first.",
    "Services that are not medically necessary are excluded, even if a provider recommends them.",
    "Cosmetic surgery is not covered unless it is needed because of an accidental injury.",
    "In most cases your network provider is responsible for obtaining prior authorization for {service}.",
    "Amounts you pay for services that are not covered do not count toward your out-of-pocket maximum.",
    "Ambulance transportation is covered when any other means of transportation could endanger your health.",
    "Telehealth visits with network providers have a {copay} copayment.",
    "The plan year begins on January 1 and ends on December 31, and your deductible resets at the start of each plan year.",
    "A grievance is a complaint about the quality of care or service you received, and it is different from an appeal.",
    "To request reimbursement, send the itemized bill and proof of payment to the claims address listed in Chapter {chapter}.",
    "Routine dental cleanings are covered twice per calendar year with no copayment.",
    "Vision exams are covered once every {months} months, and eyewear has an allowance of {amount}.",
    "Skilled nursing facility care is covered for up to {days} days per benefit period after a qualifying hospital stay.",
    "Durable medical equipment such as wheelchairs and oxygen must be ordered by a network provider.",
    "Continuity of care lets you keep seeing a provider who leaves the network for up to {days} days during an active course of treatment.",
    "If you receive {service} from an out-of-network provider without approval, you pay the full cost.",
    "We decide standard coverage requests within 14 days after we receive them.",
    "Your cost for {service} depends on where you receive it: a hospital outpatient department may cost more than a freestanding center.",
    "Keep copies of every bill, receipt and letter you send us, and write your member ID on each page.",
    "Emergency room visits have a {copay} copayment, which is waived if you are admitted to the hospital.",
];

const LIST_INTROS: &[&str] = &[
    "What you pay for common services:",
    "Services that need prior authorization:",
    "You can appeal the following decisions:",
];

fn fill(template: &str, rng: &mut XorShift64, chapter: usize) -> String {
    let mut out = template.to_owned();
    let slots: [(&str, String); 11] = [
        ("{service}", rng.pick(SERVICES).to_string()),
        ("{pct}", rng.pick(PERCENTS).to_string()),
        ("{amount}", rng.pick(AMOUNTS).to_string()),
        ("{copay}", rng.pick(COPAYS).to_string()),
        ("{days}", rng.pick(DAYS).to_string()),
        ("{visits}", rng.range(6, 60).to_string()),
        ("{phone}", format!("{:04}", rng.below(10_000))),
        ("{tier}", rng.range(1, 5).to_string()),
        ("{hours}", ["24", "48", "72"][rng.below(3)].to_owned()),
        ("{months}", ["12", "24"][rng.below(2)].to_owned()),
        (
            "{chapter}",
            (1 + (chapter + rng.below(3)) % CHAPTERS.len()).to_string(),
        ),
    ];
    for (slot, value) in slots {
        out = out.replace(slot, &value);
    }
    // A service at the start of a sentence needs its capital.
    let mut chars = out.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => out,
    }
}

fn list(rng: &mut XorShift64) -> String {
    let mut out = rng.pick(LIST_INTROS).to_string();
    for _ in 0..rng.range(3, 5) {
        out.push_str(&format!(
            "\n- {}: {} copayment",
            rng.pick(SERVICES),
            rng.pick(COPAYS)
        ));
    }
    out
}

/// The made-up word of page `page`'s marker (1-based): unique per page, three consonant-vowel
/// syllables (e.g. `bakomi`), never an English word used by the generator.
pub fn marker_word(page: usize) -> String {
    const CONSONANTS: &[u8] = b"bdfgklmnprstvz";
    const VOWELS: &[u8] = b"aeiou";
    let syllables = CONSONANTS.len() * VOWELS.len();
    let space = syllables.pow(3);
    // 7919 is prime and coprime to 70^3, so this permutes 0..space: neighbouring pages get
    // dissimilar words.
    let mut index = (page % space) * 7919 % space;
    let mut word = String::new();
    for _ in 0..3 {
        let syllable = index % syllables;
        index /= syllables;
        word.push(CONSONANTS[syllable / VOWELS.len()] as char);
        word.push(VOWELS[syllable % VOWELS.len()] as char);
    }
    word
}

/// `"Marker for page {page}: the {marker_word(page)} rider applies."`
pub fn marker_sentence(page: usize) -> String {
    format!(
        "Marker for page {page}: the {} rider applies.",
        marker_word(page)
    )
}

/// `n` pages of Evidence-of-Coverage-style prose, about 2 500 characters each, deterministic from
/// `seed`. Markdown-flavoured like parser output: a `# Chapter N. Title` heading every four pages,
/// `## N.M Section` headings, paragraphs separated by blank lines, now and then a `- ` list. Page
/// `i` (1-based) contains [`marker_sentence`]`(i)` exactly once, and no other page mentions its
/// marker word.
pub fn insurance_policy_pages(n: usize, seed: u64) -> Vec<String> {
    let mut rng = XorShift64::new(seed);
    let mut section = 0;
    let mut pages = Vec::with_capacity(n);
    for page in 1..=n {
        let chapter = (page - 1) / PAGES_PER_CHAPTER + 1;
        let mut paragraphs: Vec<String> = Vec::new();
        if (page - 1) % PAGES_PER_CHAPTER == 0 {
            section = 0;
            let title = CHAPTERS[(chapter - 1) % CHAPTERS.len()];
            paragraphs.push(format!("# Chapter {chapter}. {title}"));
        }
        let marker_after = rng.range(1, 6);
        let mut sentences_written = 0;
        let mut length = 0;
        while length < PAGE_CHARS - 150 {
            // A section opens after a chapter heading and now and then mid-page; otherwise a
            // page continues the section of the page before, as printed booklets do.
            let after_chapter_heading = paragraphs.len() == 1 && paragraphs[0].starts_with("# ");
            if after_chapter_heading || rng.chance(1, 6) {
                section += 1;
                paragraphs.push(format!("## {chapter}.{section} {}", rng.pick(SECTIONS)));
            }
            let text = if rng.chance(1, 8) {
                list(&mut rng)
            } else {
                let mut sentences = Vec::new();
                for _ in 0..rng.range(2, 5) {
                    sentences_written += 1;
                    if sentences_written == marker_after {
                        sentences.push(marker_sentence(page));
                    }
                    let template = *rng.pick(SENTENCES);
                    sentences.push(fill(template, &mut rng, chapter));
                }
                sentences.join(" ")
            };
            length += text.len() + 2;
            paragraphs.push(text);
        }
        if sentences_written < marker_after {
            paragraphs.push(marker_sentence(page));
        }
        pages.push(paragraphs.join("\n\n"));
    }
    pages
}

/// Five pages of policy prose in which only page [`KNOWN_PASSAGE_PAGE`] (3) contains
/// [`KNOWN_PASSAGE`], for end-to-end search tests ("emergency dental" must cite page 3).
pub fn known_passage_pages() -> Vec<String> {
    let mut pages = insurance_policy_pages(5, 0x5EED_D3A7);
    let page = &mut pages[KNOWN_PASSAGE_PAGE as usize - 1];
    page.push_str("\n\n## 3.9 Dental Emergencies\n\n");
    page.push_str(KNOWN_PASSAGE);
    page.push_str(
        " Treatment must begin within 72 hours of the injury, and a network dentist must submit the claim.",
    );
    pages
}

/// Splits Markdown-flavoured text into DOCX paragraphs: `#` lines become headings of their level,
/// blank-line-separated blocks become body paragraphs (inner line breaks kept).
pub fn markdown_paragraphs(text: &str) -> Vec<(Option<u8>, String)> {
    let mut out = Vec::new();
    for block in text.split("\n\n").map(str::trim).filter(|b| !b.is_empty()) {
        let hashes = block.len() - block.trim_start_matches('#').len();
        let rest = &block[hashes..];
        if (1..=6).contains(&hashes) && rest.starts_with(' ') && !rest.contains('\n') {
            out.push((Some(hashes as u8), rest.trim().to_owned()));
        } else {
            out.push((None, block.to_owned()));
        }
    }
    out
}

/// Groups Markdown-flavoured text into `(heading, body)` sections for [`super::html`]: each `#`
/// heading opens a section; text before the first heading goes into a section with no heading.
pub fn markdown_sections(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (level, block) in markdown_paragraphs(text) {
        match level {
            Some(_) => out.push((block, String::new())),
            None => {
                if out.is_empty() {
                    out.push((String::new(), String::new()));
                }
                let body = &mut out.last_mut().expect("just ensured").1;
                if !body.is_empty() {
                    body.push_str("\n\n");
                }
                body.push_str(&block);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_deterministic_from_the_seed() {
        assert_eq!(insurance_policy_pages(6, 9), insurance_policy_pages(6, 9));
        assert_ne!(insurance_policy_pages(6, 9), insurance_policy_pages(6, 10));
    }

    #[test]
    fn pages_are_about_2500_characters() {
        for page in insurance_policy_pages(40, 1) {
            assert!((2_000..=3_200).contains(&page.len()), "{}", page.len());
        }
    }

    #[test]
    fn each_page_holds_its_own_marker_exactly_once() {
        let pages = insurance_policy_pages(200, 1);
        for (index, page) in pages.iter().enumerate() {
            let number = index + 1;
            assert_eq!(
                page.matches(&marker_sentence(number)).count(),
                1,
                "page {number}"
            );
            for (other, text) in pages.iter().enumerate() {
                if other != index {
                    assert!(
                        !text.contains(&marker_word(number)),
                        "page {} names marker {number}",
                        other + 1
                    );
                }
            }
        }
    }

    #[test]
    fn marker_words_are_distinct() {
        let mut words: Vec<String> = (1..=5_000).map(marker_word).collect();
        words.sort();
        words.dedup();
        assert_eq!(words.len(), 5_000);
    }

    #[test]
    fn pages_have_chapter_and_section_headings() {
        let pages = insurance_policy_pages(8, 1);
        assert!(pages[0].starts_with("# Chapter 1. "));
        assert!(pages[4].starts_with("# Chapter 2. "));
        assert!(pages[0].contains("\n\n## 1.1 "));
        assert!(
            pages.iter().filter(|p| !p.starts_with('#')).count() >= 3,
            "pages continue the section of the page before"
        );
        assert!(
            pages.iter().all(|p| !p.contains('{')),
            "every slot is filled"
        );
    }

    #[test]
    fn known_passage_is_on_page_three_only() {
        let pages = known_passage_pages();
        assert_eq!(pages.len(), 5);
        for (index, page) in pages.iter().enumerate() {
            let expected = index + 1 == KNOWN_PASSAGE_PAGE as usize;
            assert_eq!(page.contains(KNOWN_PASSAGE), expected, "page {}", index + 1);
            assert_eq!(
                page.to_lowercase().contains("emergency dental"),
                expected,
                "page {}",
                index + 1
            );
        }
    }

    #[test]
    fn markdown_paragraphs_keep_heading_levels() {
        let paragraphs = markdown_paragraphs("# One\n\n## One.Two\n\nBody text.\n- a\n- b");
        assert_eq!(
            paragraphs,
            [
                (Some(1), "One".to_owned()),
                (Some(2), "One.Two".to_owned()),
                (None, "Body text.\n- a\n- b".to_owned()),
            ]
        );
        let sections = markdown_sections("Intro.\n\n# A\n\nx\n\ny");
        assert_eq!(
            sections,
            [
                (String::new(), "Intro.".to_owned()),
                ("A".to_owned(), "x\n\ny".to_owned())
            ]
        );
    }
}
