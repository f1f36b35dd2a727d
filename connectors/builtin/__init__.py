"""Built-in connectors, one module each, found by name through ``BUILTINS``.

Other packages add connectors through the ``consentinel.connectors`` entry-point group
(see ``registry``); the built-ins are listed here so that a missing module is an error
at ``consentinel connectors list``, not a silent gap.
"""

BUILTINS: dict[str, str] = {
    # e-mail / newsletter platforms
    "mailchimp": "consentinel.connectors.builtin.mailchimp:MailchimpConnector",
    "mandrill": "consentinel.connectors.builtin.mandrill:MandrillConnector",
    "brevo": "consentinel.connectors.builtin.brevo:BrevoConnector",
    "sendgrid": "consentinel.connectors.builtin.sendgrid:SendGridConnector",
    "mailjet": "consentinel.connectors.builtin.mailjet:MailjetConnector",
    "one_click_unsubscribe": (
        "consentinel.connectors.builtin.one_click:OneClickUnsubscribeConnector"
    ),
    # SMS gateways
    "twilio": "consentinel.connectors.builtin.twilio:TwilioConnector",
    "vonage": "consentinel.connectors.builtin.vonage:VonageConnector",
    "cmcom": "consentinel.connectors.builtin.cmcom:CMComConnector",
    # telephone
    "twilio_voice": "consentinel.connectors.builtin.twilio_voice:TwilioVoiceConnector",
    "vonage_voice": "consentinel.connectors.builtin.vonage_voice:VonageVoiceConnector",
    # lead generators
    "meta_lead_ads": "consentinel.connectors.builtin.meta_leads:MetaLeadAdsConnector",
    "meta_lead_retriever": "consentinel.connectors.builtin.meta_retriever:MetaLeadRetriever",
    "linkedin_lead_gen": "consentinel.connectors.builtin.linkedin_leads:LinkedInLeadGenConnector",
    "google_ads_leads": "consentinel.connectors.builtin.google_ads_leads:GoogleAdsLeadsConnector",
    "lead_post": "consentinel.connectors.builtin.lead_post:LeadPostConnector",
    # consent-management platforms
    "didomi": "consentinel.connectors.builtin.didomi:DidomiConnector",
    "onetrust": "consentinel.connectors.builtin.onetrust:OneTrustConnector",
    # transfers: list rentals, audience syncs and uploads
    "rental_manifest": "consentinel.connectors.builtin.rental_manifest:RentalManifestConnector",
    "segment_audiences": (
        "consentinel.connectors.builtin.segment_audiences:SegmentAudiencesConnector"
    ),
    "meta_custom_audience_upload": (
        "consentinel.connectors.builtin.audience_uploads:MetaCustomAudienceUpload"
    ),
    "google_customer_match_upload": (
        "consentinel.connectors.builtin.audience_uploads:GoogleCustomerMatchUpload"
    ),
}
