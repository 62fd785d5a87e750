//! Place names as people type them. Vietnamese names carry diacritics ("Phường Sài Gòn"), but a
//! search typed on a phone or a keyboard without them ("sai gon") must still find them, and
//! tables from different sources spell the same ward differently ("Phường Bến Nghé", "Ben Nghe").

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// `name` without diacritics, in lower case, with runs of white space made one space: the form
/// two spellings of a name are compared in. "Phường Sài Gòn" and "phuong  sai gon" fold alike;
/// đ folds to d (it is a letter of its own, not a d with a mark, so decomposition keeps it).
pub fn fold(name: &str) -> String {
    let bare: String = name
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .map(|c| match c {
            'đ' | 'Đ' => 'd',
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect();
    bare.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `name` contains `query`, both folded: the match every name search uses.
pub fn matches(name: &str, query: &str) -> bool {
    fold(name).contains(&fold(query))
}

/// The administrative prefixes of Vietnamese and English ward names, folded.
const PREFIXES: &[&str] = &[
    "phuong ",
    "xa ",
    "thi tran ",
    "dac khu ",
    "ward ",
    "commune ",
    "township ",
];

/// The part of a ward name that tells it apart: folded, without a parenthesised qualifier or an
/// administrative prefix, and with the number of a numbered ward alone ("Phường 8 (Quận 3)" and
/// "Ward 8" both give "8").
pub fn core(name: &str) -> String {
    let mut s = fold(name);
    if let Some(open) = s.find('(') {
        s.truncate(open);
    }
    let mut s = s.trim().to_string();
    for p in PREFIXES {
        if let Some(rest) = s.strip_prefix(p) {
            s = rest.trim().to_string();
            break;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_without_diacritics_case_or_extra_space() {
        assert_eq!(fold("Phường Sài Gòn"), "phuong sai gon");
        assert_eq!(fold("ĐẶC KHU  Côn Đảo"), "dac khu con dao");
        assert_eq!(fold("Xã Bình Hưng"), fold("xa binh hung"));
        assert!(matches("Phường Sài Gòn", "Sai Gon"));
        assert!(matches("Phường Sài Gòn", "sài"));
        assert!(!matches("Phường Sài Gòn", "Sao"));
        // Decomposed input (as some keyboards send it) folds like precomposed.
        assert_eq!(fold("Be\u{0302}\u{0301}n Nghe\u{0301}"), "ben nghe");
    }

    #[test]
    fn cores_drop_prefixes_and_qualifiers() {
        assert_eq!(core("Phường Bến Nghé"), "ben nghe");
        assert_eq!(core("Ben Nghe"), "ben nghe");
        assert_eq!(core("Phường 8 (Quận 3)"), "8");
        assert_eq!(core("Ward 8"), "8");
        assert_eq!(core("Xã Long Hòa (huyện Dầu Tiếng)"), "long hoa");
        assert_eq!(core("Thị trấn Dầu Tiếng"), "dau tieng");
    }
}
