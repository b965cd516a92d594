use super::translate;

#[test]
fn patterns_translate_to_chrono_formats() {
    assert_eq!(
        translate("YYYY-MM-DD HH24:MI:SS").unwrap(),
        "%Y-%m-%d %H:%M:%S"
    );
    assert_eq!(translate("FMDD FMMonth YYYY").unwrap(), "%-d %B %Y");
    assert_eq!(translate("HH12:MI AM \"at\" Dy").unwrap(), "%I:%M %p at %a");
    assert_eq!(translate("100% MS").unwrap(), "100%% %3f");
    assert_eq!(translate("yyyy-mm-dd hh24:mi").unwrap(), "%Y-%m-%d %H:%M");
    assert_eq!(translate("Q").unwrap_err(), "Q");
    assert_eq!(translate("Month").unwrap_err(), "Month");
    assert_eq!(translate("FMmonth").unwrap_err(), "month");
    // The longest pattern wins: TZH is not TZ then H, SSSS is not SS twice.
    assert_eq!(translate("HH24:MITZH").unwrap_err(), "TZH");
    assert_eq!(translate("SSSS").unwrap_err(), "SSSS");
    assert_eq!(translate("Y").unwrap_err(), "Y");
}
